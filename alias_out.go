// Outgoing topic aliases (MQTT 5), per connection.

package fennec

import (
	"container/list"

	"github.com/fennec-mqtt/fennec/packet"
)

// outAliases assigns Topic Aliases to what the client publishes on one connection (MQTT 5):
// the first message on a topic carries the topic and a new alias, later ones the alias alone.
// When every alias allowed is taken, the least recently used is given to the new topic (sent
// with its topic again). The state is the connection's: a new connection starts empty
// [MQTT-3.3.2-7]. Used under Client.mu.
type outAliases struct {
	gen   uint64 // the connection the aliases belong to
	max   uint16 // min(Config.TopicAliases, the broker's Topic Alias Maximum)
	byKey map[string]*list.Element
	lru   *list.List // of *aliasEntry, most recent first
}

type aliasEntry struct {
	topic string
	alias uint16
}

// apply returns the PUBLISH to write for p on connection gen: p itself when no alias applies,
// else a copy with the alias set and, when the alias is already bound to the topic, no topic.
func (a *outAliases) apply(gen uint64, limit, brokerMax uint16, p *packet.Publish) *packet.Publish {
	if a.gen != gen || a.byKey == nil {
		a.gen, a.max = gen, min(limit, brokerMax)
		a.byKey, a.lru = map[string]*list.Element{}, list.New()
	}
	if a.max == 0 || p.Topic == "" || p.Props.Has(packet.PropTopicAlias) {
		return p
	}
	q := *p
	if el, ok := a.byKey[p.Topic]; ok {
		a.lru.MoveToFront(el)
		q.Topic = ""
		q.Props.TopicAlias = el.Value.(*aliasEntry).alias
		q.Props.Set(packet.PropTopicAlias)
		return &q
	}
	var alias uint16
	if uint16(a.lru.Len()) < a.max {
		alias = uint16(a.lru.Len()) + 1
	} else {
		old := a.lru.Back()
		e := old.Value.(*aliasEntry)
		delete(a.byKey, e.topic)
		a.lru.Remove(old)
		alias = e.alias
	}
	a.byKey[p.Topic] = a.lru.PushFront(&aliasEntry{topic: p.Topic, alias: alias})
	q.Props.TopicAlias = alias
	q.Props.Set(packet.PropTopicAlias)
	return &q
}
