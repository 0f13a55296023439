package awsiot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fennec-mqtt/fennec"
	"github.com/fennec-mqtt/fennec/packet"
)

// Jobs is the device side of AWS IoT Jobs for one thing, over MQTT: the pending executions,
// start the next, describe one, update its status, and the notify-next handler. Requests carry a
// client token and wait for their accepted or rejected answer, as Shadow's do.
// Topics and messages: https://docs.aws.amazon.com/iot/latest/developerguide/jobs-mqtt-api.html
type Jobs struct {
	c      MQTT
	thing  string
	prefix string // $aws/things/<thing>/jobs
	r      *requester
}

// NewJobs returns the Jobs API of thing.
func NewJobs(c MQTT, thing string) *Jobs {
	return &Jobs{c: c, thing: thing, prefix: "$aws/things/" + thing + "/jobs", r: newRequester(c)}
}

// Topic returns the thing's jobs topic for op ("get", "notify-next", "<jobId>/update", ...).
func (j *Jobs) Topic(op string) string { return j.prefix + "/" + op }

// Execution statuses a device sets (and QUEUED, where executions start).
const (
	StatusQueued     = "QUEUED"
	StatusInProgress = "IN_PROGRESS"
	StatusSucceeded  = "SUCCEEDED"
	StatusFailed     = "FAILED"
	StatusRejected   = "REJECTED"
)

// JobSummary is a pending execution in a list (JobExecutionSummary).
type JobSummary struct {
	JobID           string `json:"jobId"`
	QueuedAt        int64  `json:"queuedAt"`
	StartedAt       int64  `json:"startedAt,omitempty"`
	LastUpdatedAt   int64  `json:"lastUpdatedAt"`
	VersionNumber   int64  `json:"versionNumber"`
	ExecutionNumber int64  `json:"executionNumber"`
}

// PendingJobs are the thing's executions that are not done, oldest first.
type PendingJobs struct {
	InProgress []JobSummary `json:"inProgressJobs"`
	Queued     []JobSummary `json:"queuedJobs"`
}

// JobExecution is one execution of a job by the thing, with the job document.
type JobExecution struct {
	JobID           string            `json:"jobId"`
	ThingName       string            `json:"thingName"`
	Status          string            `json:"status"`
	StatusDetails   map[string]string `json:"statusDetails,omitempty"`
	JobDocument     json.RawMessage   `json:"jobDocument,omitempty"`
	QueuedAt        int64             `json:"queuedAt"`
	StartedAt       int64             `json:"startedAt,omitempty"`
	LastUpdatedAt   int64             `json:"lastUpdatedAt"`
	VersionNumber   int64             `json:"versionNumber"`
	ExecutionNumber int64             `json:"executionNumber"`
}

// JobUpdate is a status update of an execution.
type JobUpdate struct {
	// Status is IN_PROGRESS, SUCCEEDED, FAILED or REJECTED.
	Status string
	// Details replace the execution's status details (a device reports progress or the reason
	// of a failure here).
	Details map[string]string
	// ExpectedVersion, when non-zero, makes the update fail with ErrJobVersionMismatch unless
	// the execution is at that version.
	ExpectedVersion int64
}

// JobState is an execution's state after an update.
type JobState struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails,omitempty"`
	VersionNumber int64             `json:"versionNumber"`
}

// JobsError is a rejected Jobs request: AWS's error code (InvalidTopic, InvalidJson,
// InvalidRequest, InvalidStateTransition, ResourceNotFound, VersionMismatch, InternalError,
// RequestThrottled, TerminalStateReached) and message, and the execution's state when AWS sends
// it.
type JobsError struct {
	Op             string
	Code           string    `json:"code"`
	Message        string    `json:"message"`
	ExecutionState *JobState `json:"executionState,omitempty"`
}

func (e *JobsError) Error() string {
	return fmt.Sprintf("awsiot: jobs %s rejected: %s: %s", e.Op, e.Code, e.Message)
}

// Is matches the sentinels by code.
func (e *JobsError) Is(target error) bool {
	t, ok := target.(*JobsError)
	return ok && t.Op == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrJobNotFound         = &JobsError{Code: "ResourceNotFound"}
	ErrJobVersionMismatch  = &JobsError{Code: "VersionMismatch"}
	ErrJobStateTransition  = &JobsError{Code: "InvalidStateTransition"}
	ErrJobTerminalReached  = &JobsError{Code: "TerminalStateReached"}
	ErrJobRequestThrottled = &JobsError{Code: "RequestThrottled"}
	errNoStatus            = errors.New("awsiot: jobs update without a status")
	deviceSettable         = map[string]bool{StatusInProgress: true, StatusSucceeded: true, StatusFailed: true, StatusRejected: true}
)

// Pending returns the executions that are queued or in progress (GetPendingJobExecutions).
func (j *Jobs) Pending(ctx context.Context) (*PendingJobs, error) {
	var p PendingJobs
	if err := j.request(ctx, "get", "get", "get", map[string]any{}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// StartNext starts the next pending execution (the oldest in progress, else the oldest queued,
// which becomes IN_PROGRESS) and returns it with its job document; nil when there is none.
// details, when not nil, become its status details.
func (j *Jobs) StartNext(ctx context.Context, details map[string]string) (*JobExecution, error) {
	req := map[string]any{}
	if details != nil {
		req["statusDetails"] = details
	}
	var out struct {
		Execution *JobExecution `json:"execution"`
	}
	if err := j.request(ctx, "start-next", "start-next", "start-next", req, &out); err != nil {
		return nil, err
	}
	return out.Execution, nil
}

// Describe returns the thing's execution of jobID ("$next": the next pending one; nil, nil
// when there is none) with its job document.
func (j *Jobs) Describe(ctx context.Context, jobID string) (*JobExecution, error) {
	if err := checkJobID(jobID, true); err != nil {
		return nil, err
	}
	var out struct {
		Execution *JobExecution `json:"execution"`
	}
	if err := j.request(ctx, "describe", jobID+"/get", "+/get", map[string]any{"includeJobDocument": true}, &out); err != nil {
		return nil, err
	}
	if out.Execution == nil && jobID != "$next" {
		return nil, &JobsError{Op: "describe", Code: "ResourceNotFound", Message: "the accepted answer holds no execution"}
	}
	return out.Execution, nil
}

// Update sets the status of the thing's execution of jobID and returns its new state.
func (j *Jobs) Update(ctx context.Context, jobID string, u JobUpdate) (*JobState, error) {
	if err := checkJobID(jobID, false); err != nil {
		return nil, err
	}
	if u.Status == "" {
		return nil, errNoStatus
	}
	if !deviceSettable[u.Status] {
		return nil, fmt.Errorf("awsiot: jobs update: a device sets IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not %q", u.Status)
	}
	req := map[string]any{"status": u.Status, "includeJobExecutionState": true}
	if u.Details != nil {
		req["statusDetails"] = u.Details
	}
	if u.ExpectedVersion != 0 {
		req["expectedVersion"] = u.ExpectedVersion
	}
	var out struct {
		State *JobState `json:"executionState"`
	}
	if err := j.request(ctx, "update", jobID+"/update", "+/update", req, &out); err != nil {
		return nil, err
	}
	if out.State == nil {
		return &JobState{Status: u.Status, StatusDetails: u.Details}, nil
	}
	return out.State, nil
}

// OnNext subscribes to notify-next: h gets the next pending execution each time it changes
// (with its job document), and nil when none is left.
func (j *Jobs) OnNext(ctx context.Context, h func(*JobExecution)) error {
	_, err := j.c.Subscribe(ctx, func(m *fennec.Message) {
		var n struct {
			Execution *JobExecution `json:"execution"`
		}
		if json.Unmarshal(m.Payload, &n) == nil {
			h(n.Execution)
		}
	}, packet.Subscription{Filter: j.Topic("notify-next"), QoS: 1})
	return err
}

// request publishes req to the topic sub and waits for the answer on filter + "/accepted" or
// "/rejected" (for a job's topics the filter is "+/get" or "+/update": one subscription for
// every job ID, as a connection may hold only 50).
func (j *Jobs) request(ctx context.Context, op, sub, filter string, req map[string]any, out any) error {
	a, err := j.r.do(ctx, j.Topic(sub), j.Topic(filter+"/accepted"), j.Topic(filter+"/rejected"), req)
	if err != nil {
		return fmt.Errorf("awsiot: jobs %s: %w", op, err)
	}
	if !a.accepted {
		e := &JobsError{}
		if err := json.Unmarshal(a.payload, e); err != nil {
			return fmt.Errorf("awsiot: jobs %s rejected with an answer that is not JSON: %q", op, a.payload)
		}
		e.Op = op
		return e
	}
	if err := json.Unmarshal(a.payload, out); err != nil {
		return fmt.Errorf("awsiot: jobs %s: accepted answer: %w", op, err)
	}
	return nil
}

func checkJobID(id string, next bool) error {
	if next && id == "$next" {
		return nil
	}
	if id == "" || len(id) > 64 {
		return fmt.Errorf("awsiot: job ID %q: 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("awsiot: job ID %q: only a-z, A-Z, 0-9, '-' and '_'", id)
		}
	}
	return nil
}
