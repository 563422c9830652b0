package credit

import (
	"errors"
	"testing"
)

func TestSenderCredit(t *testing.T) {
	s, err := NewSender(2)
	if err != nil {
		t.Fatal(err)
	}
	if !s.CanSend(false) || !s.CanSend(true) {
		t.Fatal("fresh sender with credit 2 must send data and events")
	}
	for want := int32(0); want < 2; want++ {
		seq, err := s.Sent(false)
		if err != nil || seq != want {
			t.Fatalf("Sent: seq %d, %v; want %d", seq, err, want)
		}
	}
	if s.CanSend(false) {
		t.Fatal("no credit left, data must wait")
	}
	if _, err := s.Sent(false); !errors.Is(err, ErrNoCredit) {
		t.Fatalf("data without credit: %v, want ErrNoCredit", err)
	}
	// Events need no credit and still take a sequence number.
	if seq, err := s.Sent(true); err != nil || seq != 2 {
		t.Fatalf("event: seq %d, %v", seq, err)
	}
	if err := s.Add(3); err != nil || s.Credit() != 3 {
		t.Fatalf("Add(3): credit %d, %v", s.Credit(), err)
	}
}

func TestSenderRejectsBadCredit(t *testing.T) {
	if _, err := NewSender(-1); !errors.Is(err, ErrInvalidCredit) {
		t.Fatalf("NewSender(-1): %v", err)
	}
	s, _ := NewSender(0)
	for _, n := range []int{0, -5} {
		if err := s.Add(n); !errors.Is(err, ErrInvalidCredit) {
			t.Fatalf("Add(%d): %v, want ErrInvalidCredit", n, err)
		}
	}
	if err := s.Add(1 << 30); err != nil {
		t.Fatalf("Add(1<<30): %v", err)
	}
	if err := s.Add(1); !errors.Is(err, ErrInvalidCredit) {
		t.Fatalf("overflowing Add: %v", err)
	}
}

func TestBacklogAnnouncementOnlyWithoutExclusiveBuffers(t *testing.T) {
	withExclusive, _ := NewSender(2)
	if withExclusive.NeedsBacklogAnnouncement(5) {
		t.Fatal("a channel with exclusive buffers learns the backlog from buffers")
	}
	s, _ := NewSender(0)
	if s.NeedsBacklogAnnouncement(0) {
		t.Fatal("nothing to announce without backlog")
	}
	if !s.NeedsBacklogAnnouncement(3) {
		t.Fatal("backlog without credit must be announced")
	}
	s.BacklogAnnounced(3)
	if s.NeedsBacklogAnnouncement(3) {
		t.Fatal("the same backlog is announced once")
	}
	if !s.NeedsBacklogAnnouncement(4) {
		t.Fatal("a grown backlog is announced again")
	}
	_ = s.Add(1)
	if s.NeedsBacklogAnnouncement(4) {
		t.Fatal("with credit the data itself carries the backlog")
	}
}

func TestReleaseCredit(t *testing.T) {
	s, _ := NewSender(0)
	_ = s.Add(2)
	if !s.ShouldReleaseCredit(0, false) {
		t.Fatal("unusable credit without exclusive buffers is handed back")
	}
	if s.ShouldReleaseCredit(1, true) {
		t.Fatal("credit with queued data is used, not handed back")
	}
	e, _ := NewSender(2)
	if e.ShouldReleaseCredit(0, false) {
		t.Fatal("exclusive credit is never handed back")
	}
}

func TestReceiverSequence(t *testing.T) {
	r := NewReceiver(2)
	if _, ok := r.CheckSequence(0); !ok {
		t.Fatal("0 refused")
	}
	if exp, ok := r.CheckSequence(2); ok || exp != 1 {
		t.Fatalf("gap: expected %d, ok %v; want 1, false", exp, ok)
	}
	if _, ok := r.CheckSequence(1); !ok {
		t.Fatal("a refused number must not advance the sequence")
	}
	r2 := NewReceiver(2)
	r2.CheckSequence(0)
	if exp, ok := r2.CheckSequence(0); ok || exp != 1 {
		t.Fatalf("repeat: expected %d, ok %v; want 1, false", exp, ok)
	}
}

func TestReceiverFloatingAndAnnouncements(t *testing.T) {
	r := NewReceiver(2)
	if r.InitialCredit() != 2 || r.Available() != 2 {
		t.Fatalf("initial credit %d, available %d", r.InitialCredit(), r.Available())
	}
	// A buffer arrives with backlog 3: the channel wants 3+2 ready
	// buffers and has 1 left, so it asks for 4 floating ones.
	if fl, err := r.TakeForData(); err != nil || fl {
		t.Fatalf("TakeForData: floating=%v, %v", fl, err)
	}
	if want := r.OnBacklog(3); want != 4 {
		t.Fatalf("floating wanted %d, want 4", want)
	}
	// Announcements aggregate: only the first addition schedules one.
	if !r.AddFloating(1) {
		t.Fatal("first credit must schedule an announcement")
	}
	for range 3 {
		if r.AddFloating(1) {
			t.Fatal("later credit joins the scheduled announcement")
		}
	}
	if n := r.TakeUnannounced(); n != 4 {
		t.Fatalf("announced %d, want 4", n)
	}
	if r.FloatingWanted() != 0 {
		t.Fatalf("still wants %d", r.FloatingWanted())
	}
	// Floating buffers are used first.
	if fl, _ := r.TakeForData(); !fl {
		t.Fatal("floating buffers are taken before exclusive ones")
	}
	// Backlog drops to 0: a recycled exclusive buffer lets a floating one
	// go instead of becoming credit.
	r.OnBacklog(0)
	if release, announce := r.Recycled(); !release || announce {
		t.Fatalf("Recycled with surplus: release=%v announce=%v", release, announce)
	}
}

func TestReceiverNoCredit(t *testing.T) {
	r := NewReceiver(0)
	if _, err := r.TakeForData(); !errors.Is(err, ErrNoCredit) {
		t.Fatalf("data with no buffer: %v", err)
	}
	if r.OnBacklog(2) != 2 {
		t.Fatal("backlog announcement must ask for floating buffers")
	}
	r.AddFloating(2)
	r.TakeUnannounced()
	_, _ = r.TakeForData()
	r.OnBacklog(0)
	// An empty buffer hands back a credit: the ready buffer it stood for
	// goes back to the gate.
	if release, _ := r.EmptyBuffer(); !release {
		t.Fatal("empty buffer with surplus must release a floating buffer")
	}
}
