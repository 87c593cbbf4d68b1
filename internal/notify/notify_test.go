package notify

import (
	"slices"
	"testing"
)

func TestPublishReachesTheTopicsSubscribersOnly(t *testing.T) {
	var n Notifier
	var targets, demand []string
	n.Subscribe(Targets, func(k string) { targets = append(targets, k) })
	n.Subscribe(Targets, func(k string) { targets = append(targets, "again:"+k) })
	n.Subscribe(Demand, func(k string) { demand = append(demand, k) })
	n.Publish(Targets, "ws/a")
	n.Publish(Demand, "ws/b")
	n.Publish(RunEnded, "ws/c") // nobody listens
	if !slices.Equal(targets, []string{"ws/a", "again:ws/a"}) || !slices.Equal(demand, []string{"ws/b"}) {
		t.Errorf("targets %v, demand %v", targets, demand)
	}
	var none *Notifier
	none.Publish(Targets, "ws/a") // a nil notifier drops it
}
