package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The Jobs service of the AWS emulation: the device side of AWS IoT Jobs over MQTT (get the
// pending executions, start the next, describe one, update its status, and the notify and
// notify-next topics). Jobs are created by the operator (AWS.Jobs, Broker.CreateJob); there is
// no control-plane API over MQTT, as on AWS.
// Source: "Jobs device MQTT API operations".
const awsDocJobs = "https://docs.aws.amazon.com/iot/latest/developerguide/jobs-mqtt-api.html"

// Job is a job of the emulation: an ID, the job document devices get, and the things it
// targets (one execution each).
type Job struct {
	ID       string
	Document json.RawMessage
	Things   []string
}

// Execution statuses (JobExecutionStatus).
const (
	JobQueued     = "QUEUED"
	JobInProgress = "IN_PROGRESS"
	JobSucceeded  = "SUCCEEDED"
	JobFailed     = "FAILED"
	JobRejected   = "REJECTED"
	JobCanceled   = "CANCELED"
	JobTimedOut   = "TIMED_OUT"
	JobRemoved    = "REMOVED"
)

// Limits of the emulation's Jobs service (AWS's: job ID 64 characters, job document 32 KB,
// client token 64).
const (
	JobMaxDocument = 32 * 1024
	JobMaxRequest  = 32 * 1024
)

var (
	jobIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	jobsTopic    = regexp.MustCompile(`^\$aws/things/([a-zA-Z0-9:_-]{1,128})/jobs/(get|start-next)$`)
	jobExecTopic = regexp.MustCompile(`^\$aws/things/([a-zA-Z0-9:_-]{1,128})/jobs/([a-zA-Z0-9_-]{1,64}|\$next)/(get|update)$`)
	errNotAWS    = errors.New("broker: the Jobs service and file delivery run only in the AWS emulation")
)

type jobs struct {
	b   *Broker
	mu  sync.Mutex
	seq int64
	ex  map[string]map[string]*execution // thing → job ID → execution
	doc map[string]json.RawMessage       // job ID → document
	now func() time.Time
}

type execution struct {
	jobID                            string
	seq                              int64 // creation order: the next pending is the oldest
	status                           string
	details                          map[string]string
	queuedAt, startedAt, lastUpdated int64
	version, number                  int64
}

func newJobs(b *Broker) *jobs {
	return &jobs{b: b, ex: map[string]map[string]*execution{}, doc: map[string]json.RawMessage{}, now: time.Now}
}

func (j *jobs) start(srv *mqtt.Server) error {
	for i, f := range []string{"$aws/things/+/jobs/+", "$aws/things/+/jobs/+/+"} {
		if err := srv.Subscribe(f, 9100+i, j.handle); err != nil {
			return fmt.Errorf("broker: jobs service: %w", err)
		}
	}
	return nil
}

// CreateJob adds a job with an execution QUEUED for each thing, and notifies the things (notify,
// and notify-next when it is their next job). It fails outside the AWS emulation, for an ID
// AWS would refuse or one already used, and for a document that is not a JSON object.
func (b *Broker) CreateJob(job Job) error {
	if b.jobs == nil {
		return errNotAWS
	}
	return b.jobs.create(job)
}

// JobExecution reports the status of thing's execution of a job, and whether there is one.
func (b *Broker) JobExecution(thing, jobID string) (status string, details map[string]string, ok bool) {
	if b.jobs == nil {
		return "", nil, false
	}
	b.jobs.mu.Lock()
	defer b.jobs.mu.Unlock()
	e := b.jobs.ex[thing][jobID]
	if e == nil {
		return "", nil, false
	}
	d := map[string]string{}
	for k, v := range e.details {
		d[k] = v
	}
	return e.status, d, true
}

func (j *jobs) create(job Job) error {
	if !jobIDPattern.MatchString(job.ID) {
		return fmt.Errorf("broker: job ID %q: 1 to 64 of a-z, A-Z, 0-9, '-' and '_'", job.ID)
	}
	var obj map[string]any
	if len(job.Document) > JobMaxDocument || json.Unmarshal(job.Document, &obj) != nil || obj == nil {
		return fmt.Errorf("broker: job %s: the document must be a JSON object of at most %d bytes", job.ID, JobMaxDocument)
	}
	if len(job.Things) == 0 {
		return fmt.Errorf("broker: job %s targets no thing", job.ID)
	}
	j.mu.Lock()
	if _, dup := j.doc[job.ID]; dup {
		j.mu.Unlock()
		return fmt.Errorf("broker: job %s exists", job.ID)
	}
	j.doc[job.ID] = append(json.RawMessage(nil), job.Document...)
	ts := j.now().Unix()
	var outs []jobOut
	for _, thing := range job.Things {
		before := j.next(thing)
		if j.ex[thing] == nil {
			j.ex[thing] = map[string]*execution{}
		}
		j.seq++
		j.ex[thing][job.ID] = &execution{jobID: job.ID, seq: j.seq, status: JobQueued, queuedAt: ts, lastUpdated: ts, version: 1, number: 1}
		outs = append(outs, j.notify(thing, before, ts)...)
	}
	j.mu.Unlock()
	j.publish(outs)
	return nil
}

type jobOut struct {
	topic   string
	payload []byte
}

func (j *jobs) publish(outs []jobOut) {
	for _, o := range outs {
		if err := j.b.srv.Publish(o.topic, o.payload, false, 1); err != nil {
			j.b.log.Warn("jobs answer not published", "topic", o.topic, "error", err)
		}
	}
}

func (j *jobs) handle(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	var thing, jobID, op string
	if m := jobsTopic.FindStringSubmatch(pk.TopicName); m != nil {
		thing, op = m[1], m[2]
	} else if m := jobExecTopic.FindStringSubmatch(pk.TopicName); m != nil {
		thing, jobID, op = m[1], m[2], m[3]
	} else {
		return // an answer or notify topic
	}
	j.publish(j.serve(thing, jobID, op, pk.TopicName, pk.Payload))
}

// jobRequest is what a device publishes; each operation reads its own fields.
type jobRequest struct {
	ClientToken              *string           `json:"clientToken"`
	Status                   string            `json:"status"`
	StatusDetails            map[string]string `json:"statusDetails"`
	ExpectedVersion          *int64            `json:"expectedVersion"`
	ExecutionNumber          *int64            `json:"executionNumber"`
	IncludeJobDocument       *bool             `json:"includeJobDocument"`
	IncludeJobExecutionState bool              `json:"includeJobExecutionState"`
}

// serve answers one request (topic is the request's; answers go to topic + "/accepted" or
// "/rejected", notifications to the thing's notify topics).
func (j *jobs) serve(thing, jobID, op, topic string, payload []byte) []jobOut {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := &jobCall{j: j, thing: thing, jobID: jobID, op: op, topic: topic, ts: j.now().Unix()}
	if len(payload) > JobMaxRequest {
		return c.reject("InvalidRequest", "The request is larger than the service takes", nil)
	}
	if len(bytes.TrimSpace(payload)) > 0 {
		if err := json.Unmarshal(payload, &c.req); err != nil {
			c.req = jobRequest{}
			return c.reject("InvalidJson", "The request is not valid JSON: "+err.Error(), nil)
		}
	}
	if c.req.ClientToken != nil && len(*c.req.ClientToken) > 64 {
		c.req.ClientToken = nil
		return c.reject("InvalidRequest", "clientToken is longer than 64 characters", nil)
	}
	switch op {
	case "get":
		return c.get()
	case "start-next": // StartNextPendingJobExecution
		return c.startNext()
	case "update": // UpdateJobExecution
		return c.update()
	}
	return nil
}

// jobCall is one Jobs request of a thing: what the answers need to name.
type jobCall struct {
	j                       *jobs
	thing, jobID, op, topic string
	ts                      int64
	req                     jobRequest
}

// token adds the client token and the time to an answer.
func (c *jobCall) token(v map[string]any) map[string]any {
	if c.req.ClientToken != nil {
		v["clientToken"] = *c.req.ClientToken
	}
	v["timestamp"] = c.ts
	return v
}

// reject is the /rejected answer with an AWS error code, and the execution's state when known.
func (c *jobCall) reject(code, msg string, e *execution) []jobOut {
	c.j.b.log.Info("jobs request rejected", "thing", c.thing, "job", c.jobID, "op", c.op, "code", code, "message", msg, "aws_doc", awsDocJobs)
	v := map[string]any{"code": code, "message": msg}
	if e != nil {
		v["executionState"] = e.state()
	}
	return []jobOut{{c.topic + "/rejected", mustJSON(c.token(v))}}
}

// accept is the /accepted answer.
func (c *jobCall) accept(v map[string]any) []jobOut {
	return []jobOut{{c.topic + "/accepted", mustJSON(c.token(v))}}
}

// get is GetPendingJobExecutions (no job ID) or DescribeJobExecution.
func (c *jobCall) get() []jobOut {
	if c.jobID == "" { // GetPendingJobExecutions
		var inProgress, queued []map[string]any
		for _, e := range c.j.pending(c.thing) {
			if e.status == JobInProgress {
				inProgress = append(inProgress, e.summary())
			} else {
				queued = append(queued, e.summary())
			}
		}
		return c.accept(map[string]any{"inProgressJobs": orEmpty(inProgress), "queuedJobs": orEmpty(queued)})
	}
	// DescribeJobExecution
	e := c.j.lookup(c.thing, c.jobID)
	if e == nil {
		if c.jobID == "$next" {
			return c.accept(map[string]any{})
		}
		return c.reject("ResourceNotFound", "No job execution of "+c.jobID+" for thing "+c.thing, nil)
	}
	if c.req.ExecutionNumber != nil && *c.req.ExecutionNumber != e.number {
		return c.reject("ResourceNotFound", fmt.Sprintf("No execution number %d of %s for thing %s", *c.req.ExecutionNumber, c.jobID, c.thing), nil)
	}
	withDoc := c.req.IncludeJobDocument == nil || *c.req.IncludeJobDocument
	return c.accept(map[string]any{"execution": c.j.full(c.thing, e, withDoc)})
}

// startNext is StartNextPendingJobExecution.
func (c *jobCall) startNext() []jobOut {
	before := c.j.next(c.thing)
	e := before
	if e == nil {
		return c.accept(map[string]any{})
	}
	if e.status == JobQueued {
		e.status, e.startedAt, e.lastUpdated = JobInProgress, c.ts, c.ts
		e.version++
		if c.req.StatusDetails != nil {
			e.details = c.req.StatusDetails
		}
	}
	out := c.accept(map[string]any{"execution": c.j.full(c.thing, e, true)})
	return append(out, c.j.notifyList(c.thing, c.ts)...)
}

// update is UpdateJobExecution.
func (c *jobCall) update() []jobOut {
	e := c.j.lookup(c.thing, c.jobID)
	if e == nil {
		return c.reject("ResourceNotFound", "No job execution of "+c.jobID+" for thing "+c.thing, nil)
	}
	switch c.req.Status {
	case JobInProgress, JobSucceeded, JobFailed, JobRejected:
	case "":
		return c.reject("InvalidRequest", "status is required: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", nil)
	default:
		return c.reject("InvalidRequest", "a device cannot set the status "+c.req.Status+": IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", nil)
	}
	if c.req.ExpectedVersion != nil && *c.req.ExpectedVersion != e.version {
		return c.reject("VersionMismatch", fmt.Sprintf("The expected version %d is not the execution's version %d", *c.req.ExpectedVersion, e.version), e)
	}
	if c.req.ExecutionNumber != nil && *c.req.ExecutionNumber != e.number {
		return c.reject("ResourceNotFound", fmt.Sprintf("No execution number %d of %s", *c.req.ExecutionNumber, c.jobID), nil)
	}
	if e.terminal() {
		return c.reject("InvalidStateTransition", "The execution is "+e.status+", a terminal status: it cannot become "+c.req.Status, e)
	}
	before := c.j.next(c.thing)
	if e.status == JobQueued && c.req.Status == JobInProgress {
		e.startedAt = c.ts
	}
	e.status, e.lastUpdated = c.req.Status, c.ts
	if c.req.StatusDetails != nil {
		e.details = c.req.StatusDetails
	}
	e.version++
	v := map[string]any{}
	if c.req.IncludeJobExecutionState {
		v["executionState"] = e.state()
	}
	if c.req.IncludeJobDocument != nil && *c.req.IncludeJobDocument {
		v["jobDocument"] = c.j.doc[e.jobID]
	}
	return append(c.accept(v), c.j.notify(c.thing, before, c.ts)...)
}

// lookup finds thing's execution of jobID ("$next": the next pending).
func (j *jobs) lookup(thing, jobID string) *execution {
	if jobID == "$next" {
		return j.next(thing)
	}
	return j.ex[thing][jobID]
}

// pending returns thing's QUEUED and IN_PROGRESS executions, oldest first.
func (j *jobs) pending(thing string) []*execution {
	var p []*execution
	for _, e := range j.ex[thing] {
		if e.status == JobQueued || e.status == JobInProgress {
			p = append(p, e)
		}
	}
	sort.Slice(p, func(a, b int) bool { return p[a].seq < p[b].seq })
	return p
}

// next is thing's next pending execution: the oldest IN_PROGRESS one, else the oldest QUEUED.
func (j *jobs) next(thing string) *execution {
	var first *execution
	for _, e := range j.pending(thing) {
		if e.status == JobInProgress {
			return e
		}
		if first == nil {
			first = e
		}
	}
	return first
}

// notify publishes notify after every change to thing's pending list, and notify-next when the
// next pending execution is another one than before.
func (j *jobs) notify(thing string, before *execution, ts int64) []jobOut {
	outs := j.notifyList(thing, ts)
	if after := j.next(thing); after != before {
		v := map[string]any{"timestamp": ts}
		if after != nil {
			v["execution"] = j.full(thing, after, true)
		}
		outs = append(outs, jobOut{"$aws/things/" + thing + "/jobs/notify-next", mustJSON(v)})
	}
	return outs
}

func (j *jobs) notifyList(thing string, ts int64) []jobOut {
	lists := map[string][]map[string]any{}
	for _, e := range j.pending(thing) {
		lists[e.status] = append(lists[e.status], e.summary())
	}
	return []jobOut{{"$aws/things/" + thing + "/jobs/notify", mustJSON(map[string]any{"jobs": lists, "timestamp": ts})}}
}

func (e *execution) terminal() bool {
	return e.status != JobQueued && e.status != JobInProgress
}

func (e *execution) summary() map[string]any {
	v := map[string]any{"jobId": e.jobID, "queuedAt": e.queuedAt, "lastUpdatedAt": e.lastUpdated, "versionNumber": e.version, "executionNumber": e.number}
	if e.startedAt != 0 {
		v["startedAt"] = e.startedAt
	}
	return v
}

func (e *execution) state() map[string]any {
	v := map[string]any{"status": e.status, "versionNumber": e.version}
	if e.details != nil {
		v["statusDetails"] = e.details
	}
	return v
}

func (j *jobs) full(thing string, e *execution, withDoc bool) map[string]any {
	v := e.summary()
	v["thingName"], v["status"] = thing, e.status
	if e.details != nil {
		v["statusDetails"] = e.details
	}
	if withDoc {
		v["jobDocument"] = j.doc[e.jobID]
	}
	return v
}

func orEmpty(l []map[string]any) []map[string]any {
	if l == nil {
		return []map[string]any{}
	}
	return l
}
