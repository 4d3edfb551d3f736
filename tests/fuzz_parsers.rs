//! Property-based fuzzing of everything that reads bytes a peer chose: dicom-ul's PDU
//! reader (with our maximum PDU), the DIMSE command decoder, the untrusted-data-set walk
//! and the instance header parse. Inputs are random bytes and random mutations of valid
//! messages (bit flips, truncations, huge declared lengths spliced in). Each property
//! asserts the parser answers (Ok or a typed error) without a panic, and that whatever it
//! accepted is within the bytes given. `make test` runs the default number of cases;
//! `make fuzz` runs many more (PROPTEST_CASES).

mod common;

use common::raw_scu::mr_dataset;
use proptest::prelude::*;
use segnode::dimse::Command;
use segnode::ingest::InstanceHeader;
use segnode::uids;
use segnode::untrusted::{self, Limits};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.5151";
const SERIES: &str = "1.2.826.0.1.3680043.8.498.5152";

/// One way to damage a valid message.
#[derive(Debug, Clone)]
enum Damage {
    FlipBit(usize, u8),
    Truncate(usize),
    /// Overwrite four bytes with a huge little-endian length.
    HugeLength(usize, u32),
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
        any::<usize>().prop_map(Damage::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                Just(u32::MAX),
                Just(0xFFFF_FFF0),
                Just(0x7FFF_FFFF),
                any::<u32>()
            ]
        )
            .prop_map(|(at, len)| Damage::HugeLength(at, len)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..24)
        )
            .prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match d {
            Damage::FlipBit(at, bit) => bytes[at % n] ^= 1 << bit,
            Damage::Truncate(at) => bytes.truncate(at % n),
            Damage::HugeLength(at, len) => {
                let at = at % n;
                for (i, b) in len.to_le_bytes().iter().enumerate() {
                    if at + i < n {
                        bytes[at + i] = *b;
                    }
                }
            }
            Damage::Insert(at, more) => {
                let at = at % n;
                bytes.splice(at..at, more.iter().copied());
            }
        }
    }
    bytes
}

fn valid_dataset() -> Vec<u8> {
    mr_dataset(
        uids::MR_IMAGE_STORAGE,
        Some("1.2.826.0.1.3680043.8.498.5153"),
        STUDY,
        SERIES,
    )
}

fn check_dataset_then_parse(bytes: &[u8], ts: &str) {
    let limits = Limits::default();
    if let Ok(checked) = untrusted::check_dataset(bytes, ts, &limits) {
        assert!(checked.header.len() <= limits.max_header_bytes as usize);
        assert!(checked.depth <= limits.max_depth);
        let _ = InstanceHeader::from_checked(&checked);
    }
}

proptest! {
    #[test]
    fn pdu_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = dicom_ul::pdu::read_pdu(&bytes[..], 16 * 1024, false);
        let _ = dicom_ul::pdu::read_pdu(&bytes[..], 16 * 1024, true);
    }

    #[test]
    fn command_decoder_answers_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn command_decoder_answers_damaged_commands(damages in proptest::collection::vec(damage(), 1..4)) {
        let valid = Command::StoreRq {
            message_id: 7,
            sop_class_uid: uids::MR_IMAGE_STORAGE.into(),
            sop_instance_uid: "1.2.3.4".into(),
            priority: 0,
            move_originator: Some(("MOVER".into(), 3)),
        }
        .encode();
        let _ = Command::decode(&apply(valid, &damages));
    }

    #[test]
    fn header_parse_answers_damaged_data_sets(
        damages in proptest::collection::vec(damage(), 1..4),
        ts in prop_oneof![Just(uids::EXPLICIT_VR_LE), Just(uids::IMPLICIT_VR_LE), Just(uids::JPEG_BASELINE)],
    ) {
        check_dataset_then_parse(&apply(valid_dataset(), &damages), ts);
    }

    #[test]
    fn deflated_walk_answers_random_and_damaged_streams(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        damages in proptest::collection::vec(damage(), 1..3),
    ) {
        check_dataset_then_parse(&bytes, uids::DEFLATED_EXPLICIT_VR_LE);
        use std::io::Write;
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&valid_dataset()).unwrap();
        let deflated = enc.finish().unwrap();
        check_dataset_then_parse(&apply(deflated, &damages), uids::DEFLATED_EXPLICIT_VR_LE);
    }
}

#[test]
fn the_valid_inputs_pass() {
    let limits = Limits::default();
    let checked =
        untrusted::check_dataset(&valid_dataset(), uids::EXPLICIT_VR_LE, &limits).unwrap();
    let header = InstanceHeader::from_checked(&checked).unwrap();
    assert_eq!(header.study_uid, STUDY);
    assert_eq!(header.series_uid, SERIES);
}
