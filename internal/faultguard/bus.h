// bus.h: the SIGBUS half of package faultguard (see faultguard.go, "Truncated
// mappings"): a signal handler that replaces a page of a guarded file mapping
// which its file no longer covers by a zero page, instead of letting the
// process die.
#ifndef THAW_FAULTGUARD_BUS_H
#define THAW_FAULTGUARD_BUS_H

#include <stdint.h>

// bus_install installs the handler once (later calls do nothing); it chains
// every SIGBUS it does not answer to the handler it replaced (Go's). 0 or an
// errno.
int bus_install(void);
// bus_guard starts answering faults in [base, base+len); it returns a slot
// (>= 0), or -1 when every slot is taken.
int bus_guard(uintptr_t base, uint64_t len);
// bus_holes is the number of pages answered in a slot since bus_guard.
uint64_t bus_holes(int slot);
// bus_release stops answering faults in a slot. The range must not be
// unmapped or reused before it returns.
void bus_release(int slot);

#endif
