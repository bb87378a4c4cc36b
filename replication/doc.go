// Package replication copies partition logs from leaders to followers and
// holds the leader's view of its followers.
//
// # Followers
//
// A Manager runs one fetcher goroutine per leader broker. Each fetcher
// sends that leader one Fetch (v12, replica id = this broker, the fetch
// offset of each partition its log end offset) at a time for every
// partition it follows, appends the returned batches unchanged (offsets
// and leader epochs included, storage.Log.AppendReplica) and moves the
// local high watermark to min(leader's, local log end).
//
// Before fetching a partition in a new leader epoch, a fetcher asks the
// leader (OffsetForLeaderEpoch v3) where its own latest epoch ends there
// and truncates the local log to that offset, or to where that epoch ends
// locally if lower (KIP-101, KIP-279): a former leader drops the records
// no ISR member acknowledged. A fetch offset the leader no longer has
// (below its log start) makes the follower start over there.
//
// # Leaders
//
// Leader (a pure state machine) records each follower's fetch offset and
// when it was last caught up. The high watermark is the lowest log end
// offset in the ISR; a follower joins the ISR once it reaches the high
// watermark and the start of the current leader epoch, and leaves it when
// it has not been caught up for replica.lag.time.max.ms. The broker writes
// those ISR changes to the metadata store with compare-and-swap.
package replication
