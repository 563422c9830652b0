package exchange

// ring is a FIFO that also takes pushes at the front (priority events and
// channels); it allocates only when it grows past its largest size so far,
// so a queue that never drains does not creep.
type ring[T any] struct {
	buf        []T
	head, size int
}

func (r *ring[T]) len() int { return r.size }

func (r *ring[T]) grow() {
	if r.size < len(r.buf) {
		return
	}
	n := make([]T, max(8, 2*len(r.buf)))
	for k := 0; k < r.size; k++ {
		n[k] = r.buf[(r.head+k)%len(r.buf)]
	}
	r.buf, r.head = n, 0
}

func (r *ring[T]) pushBack(v T) {
	r.grow()
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring[T]) pushFront(v T) {
	r.grow()
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = v
	r.size++
}

// at returns a pointer to the k-th element from the front.
func (r *ring[T]) at(k int) *T { return &r.buf[(r.head+k)%len(r.buf)] }

func (r *ring[T]) front() *T { return r.at(0) }

func (r *ring[T]) back() *T { return r.at(r.size - 1) }

func (r *ring[T]) popFront() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}

// insert puts v at position k (0 = front), shifting the rest back.
func (r *ring[T]) insert(k int, v T) {
	r.pushBack(v)
	for m := r.size - 1; m > k; m-- {
		*r.at(m) = *r.at(m - 1)
	}
	*r.at(k) = v
}

// removeFunc deletes the first element for which match is true.
func (r *ring[T]) removeFunc(match func(T) bool) bool {
	for k := 0; k < r.size; k++ {
		if match(*r.at(k)) {
			for m := k; m < r.size-1; m++ {
				*r.at(m) = *r.at(m + 1)
			}
			var zero T
			*r.at(r.size - 1) = zero
			r.size--
			return true
		}
	}
	return false
}

// drain removes and returns every element.
func (r *ring[T]) drain() []T {
	out := make([]T, 0, r.size)
	for r.size > 0 {
		out = append(out, r.popFront())
	}
	return out
}
