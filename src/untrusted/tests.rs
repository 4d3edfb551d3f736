use super::*;
use crate::uids;

/// An Explicit VR Little Endian element with a short or long length form.
fn explicit(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT" | b"UC") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

fn header_tag(out: &mut Vec<u8>, group: u16, element: u16, len: u32) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

fn minimal_dataset() -> Vec<u8> {
    let mut ds = Vec::new();
    ds.extend(explicit(
        0x0008,
        0x0016,
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.4\0",
    ));
    ds.extend(explicit(0x0008, 0x0018, b"UI", b"1.2.3.4"));
    ds.extend(explicit(0x0010, 0x0010, b"PN", b"Doe^Jane"));
    ds.extend(explicit(0x0020, 0x000D, b"UI", b"1.2.3"));
    ds.extend(explicit(0x0028, 0x0010, b"US", &64u16.to_le_bytes()));
    ds.extend(explicit(0x7FE0, 0x0010, b"OW", &[7u8; 64]));
    ds
}

/// Sequences nested `depth` deep, each of undefined length with one item of undefined
/// length, as a hostile peer builds them.
fn nested_sequences(depth: usize) -> Vec<u8> {
    let mut ds = explicit(0x0008, 0x0018, b"UI", b"1.2.3.4");
    for _ in 0..depth {
        ds.extend_from_slice(&0x0040u16.to_le_bytes());
        ds.extend_from_slice(&0xA730u16.to_le_bytes());
        ds.extend_from_slice(b"SQ\0\0");
        ds.extend_from_slice(&u32::MAX.to_le_bytes());
        header_tag(&mut ds, 0xFFFE, 0xE000, u32::MAX);
    }
    for _ in 0..depth {
        header_tag(&mut ds, 0xFFFE, 0xE00D, 0);
        header_tag(&mut ds, 0xFFFE, 0xE0DD, 0);
    }
    ds
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_plain_dataset_passes_and_its_header_stops_before_group_0028() {
    let ds = minimal_dataset();
    let checked = check_dataset(&ds, uids::EXPLICIT_VR_LE, &Limits::default()).unwrap();
    let header_len = ds.len()
        - explicit(0x0028, 0x0010, b"US", &[0, 0]).len()
        - explicit(0x7FE0, 0x0010, b"OW", &[7u8; 64]).len();
    assert_eq!(checked.header, ds[..header_len]);
    assert_eq!(checked.elements, 6);
    assert_eq!(checked.header_transfer_syntax, uids::EXPLICIT_VR_LE);
}

#[test]
fn nesting_is_bounded_without_recursion() {
    let limits = Limits::default();
    let ok = nested_sequences(MAX_SEQUENCE_DEPTH);
    assert_eq!(
        check_dataset(&ok, uids::EXPLICIT_VR_LE, &limits)
            .unwrap()
            .depth,
        MAX_SEQUENCE_DEPTH
    );
    // 100,000 deep: refused quickly, no stack overflow.
    let bomb = nested_sequences(100_000);
    let err = check_dataset(&bomb, uids::EXPLICIT_VR_LE, &limits).unwrap_err();
    assert!(
        matches!(err, UntrustedError::TooDeep { limit: 64, .. }),
        "{err}"
    );
}

#[test]
fn declared_lengths_beyond_the_data_are_refused_before_allocating() {
    // OB of 0xFFFFFFF0 bytes followed by 16 bytes (D2).
    let mut ds = explicit(0x0008, 0x0018, b"UI", b"1.2.3.4");
    ds.extend_from_slice(&[0x09, 0x00, 0x10, 0x10]);
    ds.extend_from_slice(b"OB\0\0");
    ds.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    ds.extend_from_slice(&[0u8; 16]);
    let err = check_dataset(&ds, uids::EXPLICIT_VR_LE, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            UntrustedError::LengthBeyondData {
                declared: 0xFFFF_FFF0,
                left: 16,
                ..
            }
        ),
        "{err}"
    );
    // The same in Implicit VR (PN).
    let mut ds = Vec::new();
    header_tag(&mut ds, 0x0010, 0x0010, 0xFFFF_FFF0);
    ds.extend_from_slice(&[b'A'; 16]);
    let err = check_dataset(&ds, uids::IMPLICIT_VR_LE, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, UntrustedError::LengthBeyondData { .. }),
        "{err}"
    );
}

#[test]
fn an_element_may_not_run_past_its_item() {
    let inner = explicit(0x0008, 0x1150, b"UI", b"1.2.840.10008.5.1.4.1.1.4");
    let mut item = Vec::new();
    header_tag(&mut item, 0xFFFE, 0xE000, (inner.len() - 4) as u32);
    item.extend_from_slice(&inner);
    let ds = explicit(0x0008, 0x1140, b"SQ", &item);
    let err = check_dataset(&ds, uids::EXPLICIT_VR_LE, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, UntrustedError::LengthBeyondData { .. }),
        "{err}"
    );
}

#[test]
fn command_sets_with_huge_lengths_or_sequences_are_refused() {
    let mut cmd = Vec::new();
    header_tag(&mut cmd, 0x0000, 0x0002, 0xFFFF_FFF0);
    cmd.extend_from_slice(&[b'1'; 16]);
    assert!(matches!(
        check_command_set(&cmd),
        Err(UntrustedError::LengthBeyondData { .. })
    ));
    let mut cmd = Vec::new();
    header_tag(&mut cmd, 0x0000, 0x0FFF, u32::MAX);
    assert!(matches!(
        check_command_set(&cmd),
        Err(UntrustedError::SequenceInCommand { .. })
    ));
    let real = crate::dimse::Command::EchoRq { message_id: 3 }.encode();
    check_command_set(&real).unwrap();
}

#[test]
fn random_command_sets_never_pass_lengths_they_do_not_hold() {
    // A few thousand pseudo-random 32-byte command sets: each is refused or walks within
    // its bytes; none may make the decoder allocate from a declared length.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..5000 {
        let mut bytes = [0u8; 32];
        for b in &mut bytes {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        if check_command_set(&bytes).is_ok() {
            let _ = crate::dimse::Command::decode(&bytes);
        }
    }
}

#[test]
fn deflated_datasets_are_inflated_within_the_limit() {
    let ds = minimal_dataset();
    let checked = check_dataset(
        &deflate(&ds),
        uids::DEFLATED_EXPLICIT_VR_LE,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(checked.header_transfer_syntax, uids::EXPLICIT_VR_LE);
    assert_eq!(checked.elements, 6);

    // An OB of 64 MiB of zeros deflates to ~64 KiB; with a 16 MiB limit it is refused.
    let mut bomb = explicit(0x0008, 0x0018, b"UI", b"1.2.3.4");
    bomb.extend_from_slice(&[0x42, 0x00, 0x11, 0x00]);
    bomb.extend_from_slice(b"OB\0\0");
    bomb.extend_from_slice(&(64u32 << 20).to_le_bytes());
    bomb.resize(bomb.len() + (64 << 20), 0);
    let compressed = deflate(&bomb);
    assert!(compressed.len() < 1 << 20);
    let limits = Limits {
        max_inflated_bytes: 16 << 20,
        ..Limits::default()
    };
    let err = check_dataset(&compressed, uids::DEFLATED_EXPLICIT_VR_LE, &limits).unwrap_err();
    assert!(
        matches!(err, UntrustedError::InflatedTooLarge { .. }),
        "{err}"
    );
    // Garbage is not deflate.
    assert!(check_dataset(&[0xFF; 64], uids::DEFLATED_EXPLICIT_VR_LE, &limits).is_err());
}

#[test]
fn encapsulated_pixel_data_and_implicit_un_sequences_walk() {
    let mut ds = explicit(0x0008, 0x0018, b"UI", b"1.2.3.4");
    ds.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
    ds.extend_from_slice(b"OB\0\0");
    ds.extend_from_slice(&u32::MAX.to_le_bytes());
    header_tag(&mut ds, 0xFFFE, 0xE000, 0);
    header_tag(&mut ds, 0xFFFE, 0xE000, 6);
    ds.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    header_tag(&mut ds, 0xFFFE, 0xE0DD, 0);
    let checked = check_dataset(&ds, uids::JPEG_BASELINE, &Limits::default()).unwrap();
    assert_eq!(checked.elements, 4);
    // A fragment of undefined length is not pixel data.
    let mut bad = ds.clone();
    let at = bad.len() - 8 - 6 - 8;
    bad[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(check_dataset(&bad, uids::JPEG_BASELINE, &Limits::default()).is_err());

    // UN of undefined length: implicit VR inside.
    let mut ds = explicit(0x0008, 0x0018, b"UI", b"1.2.3.4");
    ds.extend_from_slice(&[0x09, 0x00, 0x10, 0x10]);
    ds.extend_from_slice(b"UN\0\0");
    ds.extend_from_slice(&u32::MAX.to_le_bytes());
    header_tag(&mut ds, 0xFFFE, 0xE000, u32::MAX);
    header_tag(&mut ds, 0x0008, 0x0100, 4);
    ds.extend_from_slice(b"ABCD");
    header_tag(&mut ds, 0xFFFE, 0xE00D, 0);
    header_tag(&mut ds, 0xFFFE, 0xE0DD, 0);
    check_dataset(&ds, uids::EXPLICIT_VR_LE, &Limits::default()).unwrap();
}

#[test]
fn truncation_invalid_vrs_and_stray_delimiters_are_refused() {
    let ds = minimal_dataset();
    for cut in [3, 7, ds.len() - 1] {
        assert!(check_dataset(&ds[..cut], uids::EXPLICIT_VR_LE, &Limits::default()).is_err());
    }
    let zeros = vec![0u8; 4096];
    assert!(matches!(
        check_dataset(&zeros, uids::EXPLICIT_VR_LE, &Limits::default()),
        Err(UntrustedError::InvalidVr { .. })
    ));
    let mut stray = Vec::new();
    header_tag(&mut stray, 0xFFFE, 0xE0DD, 0);
    assert!(matches!(
        check_dataset(&stray, uids::EXPLICIT_VR_LE, &Limits::default()),
        Err(UntrustedError::Structure { .. })
    ));
}

#[test]
fn the_header_prefix_is_bounded() {
    let mut ds = explicit(0x0008, 0x0018, b"UI", b"1.2.3.4");
    ds.extend(explicit(0x0009, 0x1010, b"OB", &vec![0u8; 4096]));
    let limits = Limits {
        max_header_bytes: 1024,
        ..Limits::default()
    };
    assert!(matches!(
        check_dataset(&ds, uids::EXPLICIT_VR_LE, &limits),
        Err(UntrustedError::HeaderTooLarge { limit: 1024 })
    ));
}

#[test]
fn a_spilled_file_is_walked_like_memory() {
    let ds = minimal_dataset();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill");
    std::fs::write(&path, &ds).unwrap();
    let from_file = check_dataset_file(&path, uids::EXPLICIT_VR_LE, &Limits::default()).unwrap();
    let from_memory = check_dataset(&ds, uids::EXPLICIT_VR_LE, &Limits::default()).unwrap();
    assert_eq!(from_file, from_memory);
    std::fs::write(&path, &ds[..ds.len() - 10]).unwrap();
    assert!(check_dataset_file(&path, uids::EXPLICIT_VR_LE, &Limits::default()).is_err());
}
