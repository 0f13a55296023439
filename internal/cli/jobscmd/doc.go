// Package jobscmd is `fennec jobs list|next|describe|update|watch`: AWS IoT Jobs for a thing.
package jobscmd
