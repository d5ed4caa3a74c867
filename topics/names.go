package topics

import "strconv"

// RetryTopic names retry tier n (1-based) of source topic for group: <topic>.<group>.retry.<n>.
func RetryTopic(source, group string, tier int) string {
	return source + "." + group + ".retry." + strconv.Itoa(tier)
}

// DeadLetterTopic names the dead-letter topic of source for group: override when set, else <topic>.<group>.dlq.
func DeadLetterTopic(source, group, override string) string {
	if override != "" {
		return override
	}
	return source + "." + group + ".dlq"
}

// Plan is every topic one sidecar reads or writes for one source topic.
type Plan struct {
	// Source is the topic records first arrive on.
	Source string
	// Retry holds one topic per retry tier, tier 1 first.
	Retry []string
	// DeadLetter is where records that cannot be delivered end up.
	DeadLetter string
}

// PlanFor lists the topics of each source topic for group with tiers retry tiers.
func PlanFor(sources []string, group string, tiers int, dlqOverride string) []Plan {
	plans := make([]Plan, 0, len(sources))
	for _, s := range sources {
		p := Plan{Source: s, DeadLetter: DeadLetterTopic(s, group, dlqOverride)}
		for n := 1; n <= tiers; n++ {
			p.Retry = append(p.Retry, RetryTopic(s, group, n))
		}
		plans = append(plans, p)
	}
	return plans
}
