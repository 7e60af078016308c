//! The envelope's promises, tested through the keyring's public API.

use proptest::prelude::*;
use uuid::Uuid;

use super::envelope::{HEADER_LEN, NONCE_LEN, OVERHEAD, TAG_LEN};
use super::envelope::{Place, SealedField};
use super::error::CryptoError;
use super::keyring::{Keyring, Purpose};

fn ring() -> Keyring {
    Keyring::generate(false).unwrap()
}

fn place() -> Place<'static> {
    Place::new("symptom_submissions", "notes", Uuid::from_u128(0x0190_aaaa))
}

#[test]
fn round_trips_at_every_size() {
    let r = ring();
    for len in [0usize, 1, 1024, 1024 * 1024] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let sealed = r.seal(&plain, &place()).unwrap();
        assert_eq!(sealed.as_bytes().len(), len + OVERHEAD);
        assert_eq!(
            r.open(&sealed, &place()).unwrap().as_slice(),
            plain.as_slice(),
            "{len}"
        );
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let r = ring();
    let sealed = r.seal(b"a short clinical note", &place()).unwrap();
    let bytes = sealed.as_bytes().to_vec();
    let regions = [
        ("header", 0..HEADER_LEN),
        ("nonce", HEADER_LEN..HEADER_LEN + NONCE_LEN),
        ("ciphertext", HEADER_LEN + NONCE_LEN..bytes.len() - TAG_LEN),
        ("tag", bytes.len() - TAG_LEN..bytes.len()),
    ];
    for (region, range) in regions {
        for i in range {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                let res = r.open(&SealedField::from_bytes(flipped), &place());
                assert!(res.is_err(), "{region} byte {i} bit {bit} accepted");
            }
        }
    }
}

#[test]
fn truncation_is_rejected() {
    let r = ring();
    let bytes = r.seal(b"value", &place()).unwrap().into_bytes();
    for len in 0..bytes.len() {
        let res = r.open(&SealedField::from_bytes(bytes[..len].to_vec()), &place());
        assert!(res.is_err(), "truncated to {len} accepted");
    }
}

#[test]
fn a_value_does_not_open_in_another_place() {
    let r = ring();
    let p = place();
    let sealed = r.seal(b"value", &p).unwrap();
    for other in [
        Place::new(p.table, p.column, Uuid::from_u128(0x0190_aaab)),
        Place::new(p.table, "contact_email", p.row_id),
        Place::new("practitioners", p.column, p.row_id),
    ] {
        assert_eq!(
            r.open(&sealed, &other),
            Err(CryptoError::Unauthentic),
            "{other:?}"
        );
    }
}

#[test]
fn unknown_key_ids_have_their_own_error() {
    let a = ring();
    let mut b = ring();
    b.rotate(Purpose::Data).unwrap();
    b.rotate(Purpose::Data).unwrap();
    let sealed = b.seal(b"value", &place()).unwrap();
    assert_eq!(sealed.key_id().unwrap(), 3);
    assert_eq!(a.open(&sealed, &place()), Err(CryptoError::UnknownKey(3)));
    // A different keyring with the same key id is just unauthentic.
    let c = ring();
    let sealed_c = c.seal(b"value", &place()).unwrap();
    assert_eq!(a.open(&sealed_c, &place()), Err(CryptoError::Unauthentic));
}

#[test]
fn rotation_keeps_old_values_readable_and_seals_new_ones_under_the_new_key() {
    let mut r = ring();
    let old = r.seal(b"before", &place()).unwrap();
    assert_eq!(r.rotate(Purpose::Data).unwrap(), 2);
    let new = r.seal(b"after", &place()).unwrap();
    assert_eq!((old.key_id().unwrap(), new.key_id().unwrap()), (1, 2));
    assert_eq!(r.open(&old, &place()).unwrap().as_slice(), b"before");
    assert_eq!(r.open(&new, &place()).unwrap().as_slice(), b"after");
}

#[test]
fn blind_indexes_are_per_column_and_stable() {
    let r = ring();
    let a = r.blind_index("practitioners", "email", "ann@example.org");
    assert_eq!(
        a,
        r.blind_index("practitioners", "email", "ann@example.org")
    );
    assert_ne!(
        a,
        r.blind_index("symptom_submissions", "contact_email", "ann@example.org")
    );
    let mut rotated = Keyring::from_file_text(&r.to_file_text().unwrap()).unwrap();
    rotated.rotate(Purpose::Index).unwrap();
    let candidates = rotated.blind_index_candidates("practitioners", "email", "ann@example.org");
    assert_eq!(candidates.len(), 2);
    assert!(
        candidates.contains(&a),
        "old index still matched during rotation"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_value_round_trips_only_in_its_own_place(
        value in proptest::collection::vec(any::<u8>(), 0..2048),
        table in "[a-z_]{1,20}",
        column in "[a-z_]{1,20}",
        row in any::<u128>(),
        other_row in any::<u128>(),
    ) {
        let r = ring();
        let p = Place::new(&table, &column, Uuid::from_u128(row));
        let sealed = r.seal(&value, &p).unwrap();
        let opened = r.open(&sealed, &p).unwrap();
        prop_assert_eq!(opened.as_slice(), value.as_slice());
        if other_row != row {
            let q = Place::new(&table, &column, Uuid::from_u128(other_row));
            prop_assert_eq!(r.open(&sealed, &q), Err(CryptoError::Unauthentic));
        }
    }

    #[test]
    fn random_bytes_never_panic_and_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let r = ring();
        let sealed = SealedField::from_bytes(bytes);
        let _ = sealed.key_id();
        let _ = format!("{sealed:?}");
        prop_assert!(r.open(&sealed, &place()).is_err());
    }
}
