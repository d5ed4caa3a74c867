package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupMembersJoinLeaveAndDie runs the group through a member joining, one leaving on SIGTERM and one
// killed with SIGKILL, with each SIDECAR_KAFKA_GROUP_PROTOCOL, while records flow: the partitions spread over
// the members and come back, the leaving member hands its partitions over at once (not after its session
// times out), the killed one's move after the session, and every record reaches the app with the committed
// offsets at the end. With consumer, the group must be a KIP-848 group (the client does not fall back).
func TestGroupMembersJoinLeaveAndDie(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) {
			const partitions, n = 4, 400
			s := newStack(t, partitions)
			env := s.env("SIDECAR_KAFKA_GROUP_PROTOCOL="+protocol, "SIDECAR_MAX_IN_FLIGHT=4")
			s.app.setDelay(2 * time.Millisecond)
			recs := makeRecords(s.topic, partitions, n, "group")
			s.kafka.produce(t, recs[:n/2]...)

			a := startSidecar(t, env)
			s.waitMembers(t, protocol, 1, "the first member to own every partition")
			b := startSidecar(t, env)
			s.waitMembers(t, protocol, 2, "the joining member to get partitions")

			left := time.Now()
			b.stop(t)
			s.waitMembers(t, protocol, 1, "the remaining member to own every partition after the other left")
			if took := time.Since(left); took > 5*time.Second {
				t.Errorf("the partitions of the member that left moved after %v: it timed out instead of leaving", took)
			}

			c := startBinary(t, env)
			s.waitMembers(t, protocol, 2, "the third member to get partitions")
			c.signal(t, syscall.SIGKILL)
			if code := c.wait(t, 10*time.Second); code != -1 {
				t.Fatalf("after SIGKILL the process exited with %d, want death by signal", code)
			}
			s.kafka.produce(t, recs[n/2:]...)
			s.waitMembers(t, protocol, 1, "the surviving member to take the killed member's partitions")

			waitFor(t, 90*time.Second, func() bool { return len(s.app.accepted()) == n },
				"every record accepted (now %d of %d)", lazyLen{s.app}, n)
			s.kafka.waitCommitted(t, s.group, s.topic, endsOf(recs), 30*time.Second)
			a.stop(t)
		})
	}
}

// lazyLen prints how many records the app has accepted when a failure message is formatted.
type lazyLen struct{ a *testApp }

func (l lazyLen) String() string { return fmt.Sprint(len(l.a.accepted())) }

// waitMembers waits until the group has exactly want members, each owning at least one partition, with every
// partition of the consumed topics (source and retry tiers) owned, and the assignment settled. With the
// consumer protocol the group is described with KIP-848's ConsumerGroupDescribe, which only a group of that
// protocol answers, and every member must be a consumer-protocol member.
func (s *stack) waitMembers(tb testing.TB, protocol string, want int, what string) {
	tb.Helper()
	total := 3 * len(s.kafka.endOffsets(tb, s.topic)) // the source topic and its two retry tiers
	var last string
	waitFor(tb, 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var owned []int
		if protocol == "consumer" {
			// Raw, as the assignment names topics by ID and a broker may leave the names out.
			req := kmsg.NewPtrConsumerGroupDescribeRequest()
			req.Groups = []string{s.group}
			resp, err := req.RequestWith(ctx, s.kafka.cl)
			if err != nil || len(resp.Groups) != 1 {
				last = fmt.Sprintf("describing the KIP-848 group: %v", err)
				return false
			}
			g := resp.Groups[0]
			if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
				last = "describing the KIP-848 group: " + err.Error()
				return false
			}
			for _, m := range g.Members {
				if m.MemberType == 0 {
					last = "member " + m.MemberID + " uses the classic protocol"
					return false
				}
				if count(m.Assignment) != count(m.TargetAssignment) {
					last = "member " + m.MemberID + " is still reconciling"
					return false
				}
				owned = append(owned, count(m.Assignment))
			}
		} else {
			groups, err := s.kafka.adm.DescribeGroups(ctx, s.group)
			if err != nil {
				last = err.Error()
				return false
			}
			g := groups[s.group]
			if g.Err != nil || g.State != "Stable" {
				last = fmt.Sprintf("group state %q (%v)", g.State, g.Err)
				return false
			}
			for _, m := range g.Members {
				ca, ok := m.Assigned.AsConsumer()
				if !ok {
					last = "member " + m.MemberID + " has no consumer assignment"
					return false
				}
				n := 0
				for _, t := range ca.Topics {
					n += len(t.Partitions)
				}
				owned = append(owned, n)
			}
		}
		sum := 0
		for _, n := range owned {
			if n == 0 {
				last = fmt.Sprintf("a member owns nothing: %v", owned)
				return false
			}
			sum += n
		}
		last = fmt.Sprintf("members own %v partitions of %d", owned, total)
		return len(owned) == want && sum == total
	}, "%s (%s group, want %d members; last seen: %s)", what, protocol, want, lazyString{&last})
}

// count counts the partitions of a KIP-848 assignment.
func count(a kmsg.Assignment) int {
	n := 0
	for _, t := range a.TopicPartitions {
		n += len(t.Partitions)
	}
	return n
}

// lazyString prints the string it points at when a failure message is formatted.
type lazyString struct{ s *string }

func (l lazyString) String() string { return *l.s }
