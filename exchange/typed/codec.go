package typed

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Codec encodes and decodes values of T. Implementations must be safe for
// use by one writer and one gate at the same time (stateless codecs are).
type Codec[T any] interface {
	// Append appends v's encoding to dst and returns the extended slice.
	Append(dst []byte, v T) ([]byte, error)
	// Decode decodes one value from b, which holds exactly one encoding.
	// b is only valid during the call: a value that keeps it must copy.
	Decode(b []byte) (T, error)
}

// DecodeError is a record that its codec could not decode.
type DecodeError struct {
	// Codec names the codec, Len is the record's length in bytes.
	Codec string
	Len   int
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("typed: %s cannot decode a %d-byte record: %v", e.Codec, e.Len, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Bytes passes records through. Decode copies, so values outlive the
// gate's next call.
type Bytes struct{}

// Append implements Codec.
func (Bytes) Append(dst, v []byte) ([]byte, error) { return append(dst, v...), nil }

// Decode implements Codec.
func (Bytes) Decode(b []byte) ([]byte, error) { return append([]byte(nil), b...), nil }

// String encodes strings as their bytes (UTF-8 is not checked).
type String struct{}

// Append implements Codec.
func (String) Append(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }

// Decode implements Codec.
func (String) Decode(b []byte) (string, error) { return string(b), nil }

// Fixed encodes fixed-size values (bool, integers of explicit size,
// floats, and arrays or structs of those) in little-endian binary, as
// encoding/binary defines them. Use NewFixed to check T once.
type Fixed[T any] struct{ size int }

// NewFixed returns the codec for T, or an error if T has no fixed binary
// size (it holds an int, a slice, a string, a pointer...).
func NewFixed[T any]() (Fixed[T], error) {
	var zero T
	n := binary.Size(zero)
	if n < 0 {
		return Fixed[T]{}, fmt.Errorf("typed: %T has no fixed binary size", zero)
	}
	return Fixed[T]{size: n}, nil
}

// Size is the encoded size of one value.
func (c Fixed[T]) Size() int { return c.size }

// Append implements Codec.
func (c Fixed[T]) Append(dst []byte, v T) ([]byte, error) {
	if c.size == 0 {
		return dst, fmt.Errorf("typed: Fixed codec not made by NewFixed")
	}
	return appendFixed(dst, &v)
}

// Decode implements Codec.
func (c Fixed[T]) Decode(b []byte) (T, error) {
	var v T
	if c.size == 0 || len(b) != c.size {
		return v, &DecodeError{Codec: fmt.Sprintf("Fixed[%T]", v), Len: len(b), Err: fmt.Errorf("want %d bytes", c.size)}
	}
	if err := decodeFixed(b, &v); err != nil {
		return v, &DecodeError{Codec: fmt.Sprintf("Fixed[%T]", v), Len: len(b), Err: err}
	}
	return v, nil
}

// appendFixed and decodeFixed take the fast, allocation-free path of
// encoding/binary for the common scalar types and its reflective one
// otherwise.
func appendFixed[T any](dst []byte, v *T) ([]byte, error) {
	le := binary.LittleEndian
	switch p := any(v).(type) {
	case *uint64:
		return le.AppendUint64(dst, *p), nil
	case *int64:
		return le.AppendUint64(dst, uint64(*p)), nil
	case *uint32:
		return le.AppendUint32(dst, *p), nil
	case *int32:
		return le.AppendUint32(dst, uint32(*p)), nil
	case *float64:
		return le.AppendUint64(dst, math.Float64bits(*p)), nil
	}
	return binary.Append(dst, le, v)
}

func decodeFixed[T any](b []byte, v *T) error {
	le := binary.LittleEndian
	switch p := any(v).(type) {
	case *uint64:
		*p = le.Uint64(b)
		return nil
	case *int64:
		*p = int64(le.Uint64(b))
		return nil
	case *uint32:
		*p = le.Uint32(b)
		return nil
	case *int32:
		*p = int32(le.Uint32(b))
		return nil
	case *float64:
		*p = math.Float64frombits(le.Uint64(b))
		return nil
	}
	_, err := binary.Decode(b, le, v)
	return err
}
