package credit

import (
	"errors"
	"fmt"
)

// ErrInvalidCredit: a credit announcement of zero or less, or a negative
// initial credit.
var ErrInvalidCredit = errors.New("credit: invalid credit")

// ErrNoCredit: a data buffer was sent or received without credit.
var ErrNoCredit = errors.New("credit: data buffer without credit")

// Sender is the producer-side credit of one remote input channel.
type Sender struct {
	initial   int
	credit    int
	sequence  int32
	announced int // backlog last announced while without credit; -1 none
}

// NewSender starts with the consumer's initial credit (its exclusive
// buffers; 0 is allowed and selects backlog announcements).
func NewSender(initialCredit int) (*Sender, error) {
	if initialCredit < 0 {
		return nil, fmt.Errorf("%w: initial credit %d < 0", ErrInvalidCredit, initialCredit)
	}
	return &Sender{initial: initialCredit, credit: initialCredit, announced: -1}, nil
}

// Add records an AddCredit announcement.
func (s *Sender) Add(n int) error {
	if n <= 0 {
		return fmt.Errorf("%w: AddCredit %d must be > 0", ErrInvalidCredit, n)
	}
	if s.credit > 1<<30-n {
		return fmt.Errorf("%w: credit overflow (%d + %d)", ErrInvalidCredit, s.credit, n)
	}
	s.credit += n
	s.announced = -1
	return nil
}

// Credit is the number of data buffers the consumer can take now.
func (s *Sender) Credit() int { return s.credit }

// InitialCredit is the credit the channel started with.
func (s *Sender) InitialCredit() int { return s.initial }

// CanSend reports whether a buffer may be sent now: events always, data
// only with credit.
func (s *Sender) CanSend(isEvent bool) bool { return isEvent || s.credit > 0 }

// Sent records a sent buffer (data consumes one credit) and returns its
// sequence number.
func (s *Sender) Sent(isEvent bool) (int32, error) {
	if !isEvent {
		if s.credit <= 0 {
			return 0, ErrNoCredit
		}
		s.credit--
	}
	seq := s.sequence
	s.sequence++
	return seq, nil
}

// NeedsBacklogAnnouncement reports whether a BacklogAnnouncement should be
// sent for backlog: only without exclusive buffers, with no credit, and
// when this backlog has not been announced yet.
func (s *Sender) NeedsBacklogAnnouncement(backlog int) bool {
	return s.initial == 0 && s.credit == 0 && backlog > 0 && backlog != s.announced
}

// BacklogAnnounced records an announcement of backlog.
func (s *Sender) BacklogAnnounced(backlog int) { s.announced = backlog }

// ShouldReleaseCredit reports whether an empty buffer should hand an
// unusable credit back: only without exclusive buffers, when credit is
// left and nothing is queued, so the consumer's floating buffer can serve
// other channels.
func (s *Sender) ShouldReleaseCredit(backlog int, dataQueued bool) bool {
	return s.initial == 0 && s.credit > 0 && backlog == 0 && !dataQueued
}

// Receiver is the consumer-side buffer accounting of one remote input
// channel. It counts; the caller holds the actual buffers.
type Receiver struct {
	exclusive   int
	available   int // buffers ready to receive into (exclusive + floating)
	floating    int // floating buffers among the available ones
	unannounced int
	backlog     int
	expected    int32
	listening   bool // waiting for the gate's pool to hand floating buffers
}

// NewReceiver accounts for exclusive buffers that the channel already
// holds; they are the initial credit.
func NewReceiver(exclusive int) *Receiver {
	return &Receiver{exclusive: exclusive, available: exclusive}
}

// InitialCredit is the credit sent in the PartitionRequest.
func (r *Receiver) InitialCredit() int { return r.exclusive }

// Available is the number of buffers ready to receive data into.
func (r *Receiver) Available() int { return r.available }

// Floating is the number of ready floating buffers the channel holds.
func (r *Receiver) Floating() int { return r.floating }

// Backlog is the sender's last reported backlog.
func (r *Receiver) Backlog() int { return r.backlog }

// Unannounced is the credit not yet sent to the producer.
func (r *Receiver) Unannounced() int { return r.unannounced }

// Required is how many buffers the channel wants ready: backlog +
// exclusive, as in Flink.
func (r *Receiver) Required() int { return r.backlog + r.exclusive }

// CheckSequence accepts the next buffer's sequence number (ok) or, on a
// gap or repeat, returns the number it expected. The error type of a bad
// sequence is the channel's, exchange.SequenceError, which names the
// channel this package does not know.
func (r *Receiver) CheckSequence(seq int32) (expected int32, ok bool) {
	if seq != r.expected {
		return r.expected, false
	}
	r.expected++
	return seq, true
}

// TakeForData consumes one ready buffer for a received data buffer,
// floating ones first (as Flink does, keeping exclusive ones for later),
// and says which kind; it fails when the sender had no credit.
func (r *Receiver) TakeForData() (floating bool, err error) {
	if r.available <= 0 {
		return false, ErrNoCredit
	}
	r.available--
	if r.floating > 0 {
		r.floating--
		return true, nil
	}
	return false, nil
}

// OnBacklog records the sender's backlog and returns how many floating
// buffers to request now.
func (r *Receiver) OnBacklog(backlog int) int {
	if backlog < 0 {
		backlog = 0
	}
	r.backlog = backlog
	return r.FloatingWanted()
}

// FloatingWanted is how many floating buffers would bring the ready
// buffers up to Required.
func (r *Receiver) FloatingWanted() int { return max(0, r.Required()-r.available) }

// Listening reports whether the channel waits for the gate's pool.
func (r *Receiver) Listening() bool { return r.listening }

// SetListening records that the channel waits (or no longer waits) for
// floating buffers.
func (r *Receiver) SetListening(v bool) { r.listening = v }

// AddFloating records floating buffers obtained from the gate. It returns
// true when the unannounced credit went from 0 to positive: the caller
// then schedules one AddCredit announcement.
func (r *Receiver) AddFloating(n int) (announce bool) {
	r.floating += n
	r.available += n
	return r.addUnannounced(n)
}

// Recycled records that an exclusive buffer came back. It returns
// releaseFloating=true when a floating buffer should go back to the gate
// instead (the channel has more ready than required), otherwise whether an
// announcement must be scheduled.
func (r *Receiver) Recycled() (releaseFloating, announce bool) {
	r.available++
	if r.available > r.Required() && r.floating > 0 {
		r.available--
		r.floating--
		return true, false
	}
	return false, r.addUnannounced(1)
}

// EmptyBuffer records an empty data buffer: the sender spent a credit
// without using a buffer. The ready buffer stays ready; like Recycled it
// is either given back (as floating) or re-announced.
func (r *Receiver) EmptyBuffer() (releaseFloating, announce bool) {
	if r.available > r.Required() && r.floating > 0 {
		r.available--
		r.floating--
		return true, false
	}
	return false, r.addUnannounced(1)
}

// TakeUnannounced returns and clears the credit to announce now.
func (r *Receiver) TakeUnannounced() int {
	n := r.unannounced
	r.unannounced = 0
	return n
}

func (r *Receiver) addUnannounced(n int) bool {
	was := r.unannounced
	r.unannounced += n
	return was == 0 && r.unannounced > 0
}

// CheckedAny reports whether any buffer has been received.
func (r *Receiver) CheckedAny() bool { return r.expected > 0 }
