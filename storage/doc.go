// Package storage is the log of one partition: segment files of Kafka
// record batches, their sparse indexes, recovery after a crash, and the
// fsync policy (flush.messages, flush.ms) with group commit.
//
// # Files
//
// A partition lives in <data-dir>/<topic>-<partition>/. Each segment is
// three files named by the segment's base offset (the offset of its first
// batch), in decimal, zero padded to 20 digits, exactly as Kafka names them.
// Worked example: partition 3 of topic "orders", whose first segment starts
// at offset 0 and whose second (after a roll) starts at offset 1234567:
//
//	orders-3/
//	  00000000000000000000.log         batches with offsets 0 .. 1234566
//	  00000000000000000000.index
//	  00000000000000000000.timeindex
//	  00000000000001234567.log         batches from offset 1234567 (active)
//	  00000000000001234567.index
//	  00000000000001234567.timeindex
//	  .gregor-clean-shutdown           only while the log is closed cleanly
//	  partition.metadata               written by the broker, not by this package
//
// Files with other names are left alone, except that an .index or
// .timeindex with no .log beside it is removed at Open, as is a
// leftover .gregor-clean-shutdown.tmp, and a deletion intent (below) is
// acted on and removed.
//
// DeleteSegmentsBelow removes old segments (a prefix of the log) by
// renaming their three files to <name>.deleted, and removes the renamed
// files after file.delete.delay.ms (readers may still hold ranges of
// them), at Close, or, if the process stopped first, at the next Open.
// Retention (retention.go: retention.ms by each segment's largest
// timestamp, retention.bytes, segments below the log start) deletes
// segments the same way. One call costs one directory fsync for one
// segment and two for more, however many go:
//
//  1. with more than one segment to delete, the deletion intent, an
//     empty file whose name holds the base offset of the first segment
//     kept, 20 digits as in segment names, is created and the directory
//     fsynced. Deleting segments 0 and 1234567 of the example above
//     while a third segment starts at 2345678:
//
//     .gregor-delete-below-v1-00000000000002345678
//
//  2. the segments' files are renamed, the oldest segment first, each
//     .log before its indexes, and the directory fsynced once;
//
//  3. the intent is removed, without an fsync of its own (see below).
//
// The filesystem may make renames durable in any order, so a crash
// before step 2's fsync ends may leave any subset of the renames: a later
// segment's .log renamed, an earlier one's not. Open then finds the
// intent and removes the files of every segment with a base offset below
// the intent's (they were all being deleted), fsyncs the directory,
// removes the intent and fsyncs again, all before it reads the segments:
// the log is the suffix from the intent's offset, never one with a
// segment missing in the middle (which Open, which allows offset gaps
// for the cleaner's sake, could not tell from a gap). Without an intent
// (one segment) the single rename of the .log decides. The intent's
// removal (step 3) is made durable by the next directory fsync; no
// segment is ever made below the first segment's base, except when an
// empty follower starts over inside the leader's batch (AppendReplica),
// and that first renames every segment with a directory fsync after
// each, which takes the removal along. A removal that fails fails the
// log (an intent left in place would make Open remove such a segment);
// so does any deletion asked of a log that has failed already (its files
// may be mid-change: only the next Open touches them). Version
// rule: the name is the format (this is version 1); a later format gets
// another name.
//
// # Log start offset
//
// The log start offset is not always the first segment's base offset:
// DeleteRecords, and on a follower the leader's log start, may move it
// inside a segment, whose batches below it stay in the .log (unreadable:
// Read refuses offsets below the start) until the whole segment goes.
// It is kept outside the partition directory, in the data directory's
// log-start-offset-checkpoint (Kafka's text format, drawn in
// checkpoint.go), which the broker writes and passes back to Open as
// Options.LogStartOffset. Open starts the log at
//
//	max(first segment's base, min(checkpointed start, log end offset))
//
// so a missing, older or unreadable checkpoint only ever makes the start
// lower (the first segment's base: records DeleteRecords had hidden
// become readable again until the next retention pass), never loses
// data. A partition whose start is the first segment's base needs no
// entry.
//
// Version rule: the checkpoint is version 0, Kafka's; a reader that
// meets another version ignores the file (ErrCheckpointVersion), which is
// always safe as said above. A future version that must not be ignored
// gets a new file name.
//
// # .log
//
// Record batches (magic 2) back to back, byte for byte as Kafka stores
// them; see protocol/batch.go for the 61-byte header. Append writes the
// base offset (bytes 0-7) and the partition leader epoch (bytes 12-15);
// neither is covered by the CRC-32C (bytes 17-20, over bytes 21 to the end
// of the batch), so the producer's CRC stays valid (the log cleaner
// rewrites batches with a new CRC: see Compaction). Offsets are contiguous
// within a partition: each batch's base offset is the previous batch's
// base offset + last offset delta + 1, until the log cleaner removes
// records (see Compaction): then offsets only increase, with gaps, both
// between batches and inside them. Nothing else is in the file: no
// padding, no preallocation.
//
// # .index (offset index)
//
// Sparse, 8-byte entries, big endian, sorted by both fields:
//
//	offset  width  field
//	0       4      relative offset  (batch's LAST offset - segment base offset)
//	4       4      position         (byte offset of that batch in the .log)
//
// As in Kafka, an entry names a batch by its last offset, so the entry
// (rel, pos) says: "the batch at pos ends at offset base+rel". To find the
// batch holding offset o, take the last entry with base+rel <= o (or
// position 0 when none) and read batch headers forward to the first batch
// whose last offset is >= o.
//
// An entry is written for a batch when at least index.interval.bytes of
// batches were appended to the segment since the batch of the previous entry
// began (counting that batch) or, with no entry yet, since the segment began.
// The first batch of a segment never gets an entry. The file holds whole
// entries only.
//
// # .timeindex (time index)
//
// Sparse, 12-byte entries, big endian:
//
//	offset  width  field
//	0       8      timestamp        (largest batch max timestamp so far in the segment)
//	8       4      relative offset  (last offset of the first batch that reached it - base)
//
// Written together with an offset index entry, and once more when the
// segment stops being active (roll or clean close), each time only if the
// segment's largest max timestamp has grown since the last entry, so the
// timestamps are strictly increasing. The last entry of an inactive segment
// is therefore the segment's largest timestamp.
//
// # .gregor-clean-shutdown
//
// Written by Close after everything was fsynced (write .tmp, fsync, rename,
// fsync the directory); removed, durably, before anything in the
// directory changes: by Open when it had to change something, else at the
// first change (marker_guard.go), and a Close with nothing changed leaves
// it. It vouches for the segments and their indexes, the leader epoch
// checkpoint and the producer snapshot, not for partition.metadata (the
// broker's, rewritten whenever it disagrees). Text, one "key: value" per
// line after a version line:
//
//	gregor-clean-shutdown v1
//	log-end-offset: 1234890
//
// When it is present and agrees with the files, Open trusts the segments
// and their indexes (checking only their shape and the headers after the
// last offset index entry). When it is absent, unreadable, of an unknown
// version, or disagrees, Open recovers from the recovery point (below).
//
// Version rule: a reader of version N accepts versions N and N-1 (this code
// is version 1 and accepts only 1, as there was no version 0) and ignores
// lines with keys it does not know. A change that older readers could
// misread gets a new version; a reader that meets a version it does not
// accept treats the shutdown as unclean, which is always safe (it only
// costs a scan).
//
// # Compaction (cleaner.go, cleaner_swap.go)
//
// Log.Clean compacts the closed segments of a log below its first
// uncleanable offset (the active segment's base offset, the last stable
// offset, or the first segment younger than min.compaction.lag.ms,
// whichever is lowest), as Kafka's LogCleaner does:
//
//   - An offset map (a fixed table of 24-byte slots, a 128-bit hash of the
//     key and an offset, log.cleaner.dedupe.buffer.size divided among the
//     threads) takes the keys of the dirty batches, from the cleaner
//     checkpoint on, batch by batch while it has room; the pass cleans up
//     to where it stopped (CleanStats.CleanedTo, the next checkpoint).
//   - Every closed segment from the log start to there is rewritten: a
//     record stays if it has a key, no later record of the key was mapped,
//     and it is not a tombstone (null value) whose batch's delete horizon
//     (below) has passed. Batches keep their base offset, last offset
//     delta, producer fields and timestamps; only the records left, their
//     count and the CRC change (protocol.FilterBatch). Kept records keep
//     their offsets; the log start offset does not move.
//   - Records of aborted transactions go. A transaction marker stays
//     while any batch of its transaction stays, and, once none does,
//     until its batch's delete horizon has passed. A batch left with no
//     record stays, as an empty batch, when it is its idempotent
//     producer's latest, so the producer state rebuilt from the log keeps
//     every producer; otherwise it goes. Keyless records go (Kafka drops
//     them too; produce refuses them on compacted topics).
//   - Delete horizon (KIP-534, as Kafka 3.1 and later): the first pass
//     that keeps tombstones in a batch, or keeps a marker only for
//     delete.retention.ms, rewrites that batch with attribute bit 6
//     (0x40, Kafka's hasDeleteHorizonMs) set and its base timestamp
//     (bytes 27-34) holding the delete horizon: the pass's start time
//     (Options.Now) plus delete.retention.ms. Every record's timestamp
//     delta is rewritten relative to the horizon, so base timestamp +
//     delta (what Kafka's and franz-go's consumers compute) still gives
//     each record the timestamp it had; the max timestamp, the other
//     attributes and the codec stay, and the CRC is recomputed
//     (protocol.SetDeleteHorizon). A batch that has the bit keeps its
//     horizon when filtered again. A later pass whose start time is at
//     or past the horizon removes the batch's tombstones, or the marker.
//     A tombstone thus stays at least delete.retention.ms after the first
//     pass that saw it, whatever timestamp its producer gave it. The
//     merge rounds (below) decide nothing about tombstones and markers:
//     one pass decides once, at its start time, as Kafka's does.
//   - Segments are cleaned in groups whose sizes, index sizes and offset
//     ranges fit one segment; each group becomes one segment named by the
//     group's first base offset. Later rounds of the same pass merge runs
//     of cleaned segments that now fit in one.
//
// Only closed segments are cleaned; a compacted log's active segment is
// rolled once it is older than max.compaction.lag.ms (retention.go).
//
// Swap protocol. A group's cleaned image is written aside as
// <base>.log.cleaned, <base>.index.cleaned and <base>.timeindex.cleaned
// and fsynced, without the append lock. Then:
//
//  1. still without the append lock, the swap marker cleaner-swap is
//     written (write .tmp, fsync, rename, fsync the directory):
//
//     gregor-cleaner-swap v1
//     base: 0
//     end: 1234567
//
//     base is the cleaned segment's base offset, end the base offset of
//     the first segment it does not replace. No .swap file exists yet, so
//     the marker decides nothing: a crash here leaves the old segments,
//     and Open removes the marker;
//
//  2. under the append lock, the group is checked: its segments still in
//     the log, the same ones, followed by the segment at end, and no
//     truncation of the log (TruncateTo, a start over) since the pass
//     began (the log counts them). If the check fails, the swap is
//     abandoned: the .cleaned files and the marker are removed, nothing
//     else changed, and the pass ends with ErrCleanAborted (the broker
//     runs a new one after log.cleaner.backoff.ms);
//
//  3. the .cleaned files are renamed to .swap, the .log last, and the
//     directory fsynced: once <base>.log.swap exists the swap is decided;
//
//  4. the replaced segments' files are renamed to .deleted, oldest
//     segment first and each segment's .log first, and the directory
//     fsynced once, after the last;
//
//  5. the .swap files are renamed to their segment names, the .log last,
//     and the directory fsynced; the new segment is published, the append
//     lock released, and the marker removed (not fsynced: a marker left
//     with no .swap file is removed at Open).
//
// Steps 2 to 5 hold the append lock, with three directory fsyncs
// whatever the number of segments replaced. A kill during step 4 leaves
// <base>.log.swap durable (step 3's fsync) and any of step 4's renames:
// Open removes the group's segment files that are left. Step 5 starts
// only once step 4 is durable.
//
// Open, before reading segments, removes every .cleaned file; with a
// <base>.log.swap it removes the segment files with base offsets in
// [base, end) and renames the .swap files into place; an index of base
// left without a .swap (renamed in step 5 already, or the old one with
// the cleaned one's rename of step 3 lost) is thus removed and rebuilt
// from the .log. Without a <base>.log.swap it removes the .swap files:
// either the swap was not decided (the old segments are whole) or step 5
// renamed the .log (the old segments went durably in step 4), and a
// missing index is rebuilt. Then it removes the marker. A kill at any step thus leaves either the old
// segments or the cleaned one, never both or neither, and every key reads
// the same latest value. The marker's version rule is the clean-shutdown
// marker's.
//
// # Durability
//
// With flush.messages and flush.ms left to the OS (the Kafka default), a
// batch is durable when the kernel writes it back. When the topic asks for
// fsync (flush.messages=1, say), Append returns only once an fsync covering
// its batch has finished; concurrent appenders share fsyncs (group commit).
// A segment that stops being active is fsynced, with its indexes and the
// directory, in the background right after the roll. Indexes of the active
// segment are fsynced only at Close: recovery rebuilds them.
//
// # Recovery point
//
// Log.RecoveryPoint is the offset below which everything is fsynced (the
// .log bytes, and the indexes and directory entries of the segments that
// stopped being active): it moves when a sync pass ends, so at least at
// every roll. The broker writes it for every open log to the data
// directory's recovery-point-offset-checkpoint (Kafka's file and format,
// checkpoint.go) every log.flush.offset.checkpoint.interval.ms and after
// closing the logs at shutdown, and hands the checkpointed value to Open
// (Options.RecoveryPoint; 0 when there is none).
//
// A truncation (TruncateTo, StartAt, a follower starting over inside the
// leader's batch) cuts the recovery point back with the bytes and hands
// the new point to Options.OnTruncate under the append lock, so before
// any batch can be appended past the cut; the broker lowers its
// checkpoint entry there, durably, when the entry is above the point
// (Kafka's LogManager.truncateTo does the same). Without that, the
// offsets between the new end and the old entry would be written again,
// not yet fsynced, and a crash before the next checkpoint write would
// make Open trust the segments holding them. For the same reason the
// broker never hands a log the entry of another incarnation of its
// directory (a topic recreated under the name): broker/checkpoint_recovery.go.
//
// After an unclean shutdown, Open trusts the segments that end at or below
// the recovery point (a segment ends where the next begins) and checks
// every later one:
//
//   - a segment that is not the last is read whole, batch by batch (header,
//     length, CRC-32C, offsets increasing; gaps are allowed, as the log
//     cleaner leaves them), its indexes rewritten and, when good, fsynced
//     with them;
//   - the last one is checked from its last offset index entry that points
//     at a real batch ending below the recovery point (from its start when
//     there is none): an entry past the point was not fsynced with the
//     bytes before it, which writeback may have lost while saving it;
//   - the first segment found bad is cut at the first bad byte and becomes
//     the active segment; every segment after it is removed, the newest
//     first, before the cut (Kafka's rule: the log ends at the first
//     damage), so that a crash during recovery leaves a prefix that
//     recovers the same way.
//
// Recovery thus reads what was written since the checkpoint, not the whole
// log, and a clean shutdown (a valid marker) skips it. Segments below the
// recovery point are not read again: damage there is not looked for, as in
// Kafka.
package storage
