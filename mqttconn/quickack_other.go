//go:build !linux

package mqttconn

import "net"

type quickAcker struct{}

func newQuickAcker(net.Conn) *quickAcker { return nil }

func (*quickAcker) arm() {}

type sockInfo struct{}

func sockInfoOf(*quickAcker) sockInfo { return sockInfo{} }

func (sockInfo) sendQueueEmpty() bool { return false }

func (sockInfo) setRcvLowat(int) bool { return false }
