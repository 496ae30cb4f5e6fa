package main

import (
	"math"
	"math/rand/v2"
)

// tensor is a float32 feature map in channel-height-width order.
type tensor struct {
	c, h, w int
	d       []float32
}

func newTensor(c, h, w int) *tensor { return &tensor{c, h, w, make([]float32, c*h*w)} }

func (t *tensor) at(c, y, x int) float32 { return t.d[(c*t.h+y)*t.w+x] }

// conv is a 3x3 convolution with zero padding 1 and stride 1.
type conv struct {
	in, out int
	w       []float32 // [out][in][3][3]
	b       []float32
}

// dense is a fully connected layer.
type dense struct {
	in, out int
	w       []float32 // [out][in]
	b       []float32
}

// network is a small VGG-style classifier for 64x64 RGB images:
// three conv-ReLU-maxpool blocks (3→16→32→64 channels, 64→8 pixels), a
// 4096→1024 hidden layer and a 1024→1000 output layer. About 5.2 million
// float32 weights (21 MB), most of them in the dense layers, so the
// snapshot carries a real model's worth of memory, and about 16 million
// multiply-adds per image.
type network struct {
	convs  []*conv
	hidden *dense
	output *dense
}

// Geometry of the network.
const (
	inputSize = 64
	classes   = 1000
)

// newNetwork draws He-initialised weights from a seeded generator: every
// instance has the same model, and activations neither vanish nor explode
// through the layers.
func newNetwork(seed uint64) *network {
	rng := rand.New(rand.NewPCG(seed, 0xc22))
	normal := func(n, fanIn int) []float32 {
		std := math.Sqrt(2 / float64(fanIn))
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return v
	}
	net := &network{}
	for _, ch := range [][2]int{{3, 16}, {16, 32}, {32, 64}} {
		net.convs = append(net.convs, &conv{in: ch[0], out: ch[1], w: normal(ch[1]*ch[0]*9, ch[0]*9), b: make([]float32, ch[1])})
	}
	flat := 64 * (inputSize / 8) * (inputSize / 8)
	net.hidden = &dense{in: flat, out: 1024, w: normal(1024*flat, flat), b: make([]float32, 1024)}
	net.output = &dense{in: 1024, out: classes, w: normal(classes*1024, 1024), b: make([]float32, classes)}
	return net
}

// params returns the number of weights and biases.
func (n *network) params() int {
	p := len(n.hidden.w) + len(n.hidden.b) + len(n.output.w) + len(n.output.b)
	for _, c := range n.convs {
		p += len(c.w) + len(c.b)
	}
	return p
}

// forward returns the class probabilities for a 3 x 64 x 64 input.
func (n *network) forward(x *tensor) []float32 {
	for _, c := range n.convs {
		x = maxPool(relu(c.apply(x)))
	}
	h := relu(&tensor{c: len(x.d), h: 1, w: 1, d: n.hidden.apply(x.d)})
	return softmax(n.output.apply(h.d))
}

// apply convolves x, which must have c.in channels.
func (c *conv) apply(x *tensor) *tensor {
	out := newTensor(c.out, x.h, x.w)
	for o := range c.out {
		plane := out.d[o*x.h*x.w : (o+1)*x.h*x.w]
		for i := range plane {
			plane[i] = c.b[o]
		}
		for i := range c.in {
			k := c.w[(o*c.in+i)*9 : (o*c.in+i)*9+9]
			src := x.d[i*x.h*x.w : (i+1)*x.h*x.w]
			for ky := range 3 {
				for kx := range 3 {
					wt := k[ky*3+kx]
					dy, dx := ky-1, kx-1
					for y := max(0, -dy); y < min(x.h, x.h-dy); y++ {
						srow := src[(y+dy)*x.w : (y+dy+1)*x.w]
						drow := plane[y*x.w : (y+1)*x.w]
						for xx := max(0, -dx); xx < min(x.w, x.w-dx); xx++ {
							drow[xx] += wt * srow[xx+dx]
						}
					}
				}
			}
		}
	}
	return out
}

// apply multiplies x by the layer's weights and adds its bias.
func (d *dense) apply(x []float32) []float32 {
	out := make([]float32, d.out)
	for o := range d.out {
		row := d.w[o*d.in : (o+1)*d.in]
		s := d.b[o]
		for i, v := range x {
			s += row[i] * v
		}
		out[o] = s
	}
	return out
}

// relu clamps negative values to zero in place.
func relu(t *tensor) *tensor {
	for i, v := range t.d {
		if v < 0 {
			t.d[i] = 0
		}
	}
	return t
}

// maxPool halves the height and width, keeping each 2x2 window's maximum.
func maxPool(t *tensor) *tensor {
	out := newTensor(t.c, t.h/2, t.w/2)
	for c := range t.c {
		for y := range out.h {
			for x := range out.w {
				m := max(t.at(c, 2*y, 2*x), t.at(c, 2*y, 2*x+1), t.at(c, 2*y+1, 2*x), t.at(c, 2*y+1, 2*x+1))
				out.d[(c*out.h+y)*out.w+x] = m
			}
		}
	}
	return out
}

// softmax turns logits into probabilities.
func softmax(z []float32) []float32 {
	m := z[0]
	for _, v := range z {
		m = max(m, v)
	}
	var sum float64
	out := make([]float32, len(z))
	for i, v := range z {
		e := math.Exp(float64(v - m))
		out[i] = float32(e)
		sum += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / sum)
	}
	return out
}
