use std::fs::OpenOptions;

use super::*;
use crate::audit::record::Event;

/// `n` records chained after `prev`, from `seq`.
fn chain(seq: u64, prev: &str, n: u64) -> Vec<Record> {
    let mut prev = prev.to_owned();
    (seq..seq + n)
        .map(|s| {
            let event = Event::Start {
                version: format!("test {s}"),
                torn_bytes: 0,
            };
            let r = Record::seal(s, 1_000 + s, prev.clone(), None, event);
            prev = r.hash.clone();
            r
        })
        .collect()
}

fn lines(records: &[Record]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|r| format!("{}\n", r.to_line()).into_bytes())
        .collect()
}

/// A log and its ring in a fresh directory.
struct Fixture {
    _dir: tempfile::TempDir,
    log_path: PathBuf,
    ring_path: PathBuf,
    log: File,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("audit.log");
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .unwrap();
        Fixture {
            ring_path: path_for(&log_path),
            log_path,
            log,
            _dir: dir,
        }
    }

    fn len(&self) -> u64 {
        self.log.metadata().unwrap().len()
    }

    /// Append `records` to the log and, as the writer does, to the ring.
    fn batch(&mut self, ring: &mut Ring, records: &[Record]) {
        let bytes = lines(records);
        self.log.write_all(&bytes).unwrap();
        ring.append(&bytes).unwrap();
    }

    fn replay(&mut self) -> Replayed {
        replay(&self.ring_path, &mut self.log).unwrap()
    }

    fn log_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.log_path).unwrap()
    }
}

#[test]
fn the_ring_sits_beside_the_log() {
    assert_eq!(
        path_for(Path::new("/state/audit/audit.log")),
        Path::new("/state/audit/audit.log.ring")
    );
}

#[test]
fn a_power_cut_that_takes_the_logs_unsynced_tail_is_made_good_from_the_ring() {
    let mut f = Fixture::new();
    let first = chain(0, GENESIS, 3);
    f.log.write_all(&lines(&first)).unwrap();
    let base = f.len();
    let mut ring = Ring::begin(&f.ring_path, &f.log, base, 3, &first[2].hash).unwrap();
    let later = chain(3, &first[2].hash, 7);
    f.batch(&mut ring, &later[..4]);
    f.batch(&mut ring, &later[4..]);
    let whole = f.log_bytes();

    // What a power cut can leave of what was never synced: nothing, part of a line, or
    // blocks of zeros.
    for cut in [base, base + 10, base + 500] {
        f.log.set_len(cut).unwrap();
        assert_eq!(f.replay(), Replayed::Restored(7), "cut at {cut}");
        assert_eq!(f.log_bytes(), whole, "cut at {cut}");
    }
    f.log.set_len(base + 100).unwrap();
    f.log.write_all(&[0u8; 300]).unwrap();
    assert_eq!(f.replay(), Replayed::Restored(7));
    assert_eq!(f.log_bytes(), whole);
}

#[test]
fn a_log_that_holds_the_ring_is_left_as_it_is() {
    let mut f = Fixture::new();
    let mut ring = Ring::begin(&f.ring_path, &f.log, 0, 0, GENESIS).unwrap();
    let records = chain(0, GENESIS, 5);
    f.batch(&mut ring, &records[..3]);
    // A process killed between its log write and the ring's: the log has more, which is
    // kept (and a torn line after it is the start's to cut).
    f.log.write_all(&lines(&records[3..])).unwrap();
    f.log.write_all(b"{\"seq\":5,").unwrap();
    let before = f.log_bytes();
    assert_eq!(f.replay(), Replayed::Nothing);
    assert_eq!(f.log_bytes(), before);
}

#[test]
fn a_torn_ring_entry_ends_the_replay_at_the_last_whole_record() {
    let mut f = Fixture::new();
    let mut ring = Ring::begin(&f.ring_path, &f.log, 0, 0, GENESIS).unwrap();
    let records = chain(0, GENESIS, 4);
    f.batch(&mut ring, &records[..2]);
    // The next batch's write reached the ring only in part, and was never answered: its
    // first record whole (kept, as a log would keep it), its second torn.
    let torn = lines(&records[2..]);
    ring.file
        .write_all_at(&torn[..torn.len() - 30], ring.pos)
        .unwrap();
    f.log.set_len(0).unwrap();
    assert_eq!(f.replay(), Replayed::Restored(3));
    assert_eq!(f.log_bytes(), lines(&records[..3]));
}

#[test]
fn records_of_an_earlier_round_are_never_replayed() {
    let mut f = Fixture::new();
    let mut ring = Ring::begin(&f.ring_path, &f.log, 0, 0, GENESIS).unwrap();
    let records = chain(0, GENESIS, 8);
    f.batch(&mut ring, &records[..6]);
    // The log synced (a checkpoint), the ring begun again after record 5; one more batch.
    f.log.sync_data().unwrap();
    let base = f.len();
    ring.restart(base, 6, &records[5].hash).unwrap();
    f.batch(&mut ring, &records[6..7]);
    // Record 7 went to the log, not the ring; its line overwrote only part of the old
    // round's first record there, whose remains follow.
    f.log.set_len(base).unwrap();
    assert_eq!(f.replay(), Replayed::Restored(1));
    assert_eq!(f.log_bytes(), lines(&records[..7]));
    // Begun again with nothing after it: the old round's records chain from nothing.
    ring.restart(f.len(), 7, &records[6].hash).unwrap();
    assert_eq!(f.replay(), Replayed::Nothing);
    assert_eq!(f.log_bytes(), lines(&records[..7]));
}

#[test]
fn a_ring_that_does_not_follow_the_log_is_left_out() {
    let mut f = Fixture::new();
    let records = chain(0, GENESIS, 6);
    f.log.write_all(&lines(&records[..4])).unwrap();
    let base = f.len();
    let mut ring = Ring::begin(&f.ring_path, &f.log, base, 4, &records[3].hash).unwrap();
    f.batch(&mut ring, &records[4..]);
    drop(ring);

    // A log restored from an older backup: shorter than the ring's base.
    let old = lines(&records[..2]);
    f.log.set_len(0).unwrap();
    f.log.write_all(&old).unwrap();
    assert!(matches!(f.replay(), Replayed::Foreign(_)));
    assert_eq!(f.log_bytes(), old);

    // Another log of the same length: its record at the base is not the one chained from.
    let other = chain(0, GENESIS, 4)
        .into_iter()
        .map(|r| Record::seal(r.seq, r.time_ms + 1, r.prev, None, r.event))
        .collect::<Vec<_>>();
    f.log.set_len(0).unwrap();
    f.log.write_all(&lines(&other)).unwrap();
    assert_eq!(f.len(), base);
    assert!(matches!(f.replay(), Replayed::Foreign(_)));
}

#[test]
fn without_a_whole_header_or_a_ring_nothing_is_replayed() {
    let mut f = Fixture::new();
    assert_eq!(f.replay(), Replayed::Nothing);
    let mut ring = Ring::begin(&f.ring_path, &f.log, 0, 0, GENESIS).unwrap();
    f.batch(&mut ring, &chain(0, GENESIS, 2));
    // A header whose write was cut: one byte of its check differs.
    let mut block = vec![0u8; HEADER_BYTES as usize];
    ring.file.read_exact_at(&mut block, 0).unwrap();
    let at = block.iter().position(|b| *b == b'\n').unwrap() - 3;
    block[at] ^= 1;
    assert_eq!(Header::parse(&block), None);
    ring.file.write_all_at(&block, 0).unwrap();
    f.log.set_len(0).unwrap();
    assert_eq!(f.replay(), Replayed::Nothing);
}

#[test]
fn a_batch_that_does_not_fit_is_for_the_log_to_sync() {
    let f = Fixture::new();
    let size = HEADER_BYTES + 1000;
    let mut ring = Ring::begin_sized(&f.ring_path, &f.log, (0, 0, GENESIS), size).unwrap();
    assert_eq!(f.ring_path.metadata().unwrap().len(), size);
    assert!(ring.fits(1000) && !ring.fits(1001));
    ring.append(&[b'x'; 600]).unwrap();
    assert!(ring.fits(400) && !ring.fits(401));
    ring.restart(0, 0, GENESIS).unwrap();
    assert!(ring.fits(1000));
    // A ring of another size is made again at the size asked for.
    drop(ring);
    Ring::begin(&f.ring_path, &f.log, 0, 0, GENESIS).unwrap();
    assert_eq!(f.ring_path.metadata().unwrap().len(), RING_BYTES);
}
