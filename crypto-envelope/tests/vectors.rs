//! Known-answer vectors of the sealed-value format (`tests/data/envelope_v1_*.txt`),
//! checked byte for byte, plus an independent implementation of `FORMAT.md` written here
//! from raw aws-lc-rs primitives that must produce the same bytes.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use crypto_envelope::{
    Argon2Params, DataKey, EncryptionContext, Envelope, Error, KekBackend, LocalKeyRing, MasterKey,
    PassphraseKek, Sealed, hazmat,
};

type Vector = Vec<(String, String)>;

fn load(name: &str) -> Vec<Vector> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once(':').unwrap();
                    (k.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned())
                })
                .collect::<Vector>()
        })
        .filter(|v: &Vector| !v.is_empty())
        .collect()
}

fn field<'a>(v: &'a Vector, name: &str) -> &'a str {
    v.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("vector lacks {name}"))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn context(v: &Vector) -> EncryptionContext {
    let mut c = EncryptionContext::new();
    for (_, pair) in v.iter().filter(|(k, _)| k == "context") {
        let (n, val) = pair.split_once('=').unwrap();
        c.insert(n, val).unwrap();
    }
    c
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

fn envelope(v: &Vector) -> Envelope {
    let key = MasterKey::parse("master_key", field(v, "master_key")).unwrap();
    let version: u32 = field(v, "key_version").parse().unwrap();
    Envelope::new(
        LocalKeyRing::builder()
            .key(version, key)
            .primary(version)
            .build()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn pass_vectors_match_byte_for_byte() {
    let vectors = load("envelope_v1_pass.txt");
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        let name = field(v, "name");
        let key = MasterKey::parse("master_key", field(v, "master_key")).unwrap();
        assert_eq!(key.fingerprint(), field(v, "key_id"), "{name}");
        let ctx = context(v);
        assert_eq!(
            ctx.canonical_bytes(),
            hex(field(v, "context_canonical")),
            "{name}"
        );
        assert_eq!(hazmat::wrap_aad(&ctx), hex(field(v, "wrap_aad")), "{name}");
        assert_eq!(
            hazmat::payload_aad(&ctx),
            hex(field(v, "payload_aad")),
            "{name}"
        );
        let dek = DataKey::from_slice(&hex(field(v, "dek"))).unwrap();
        assert_eq!(
            hazmat::commitment(&dek).unwrap().to_vec(),
            hex(field(v, "commitment"))
        );
        let plaintext = hex(field(v, "plaintext"));
        let sealed = hazmat::seal_local_with(
            &key,
            field(v, "key_version").parse().unwrap(),
            &dek,
            arr(field(v, "wrap_nonce")),
            arr(field(v, "payload_nonce")),
            &plaintext,
            &ctx,
        )
        .unwrap();
        assert_eq!(sealed.to_bytes(), hex(field(v, "sealed")), "{name}");
        assert_eq!(sealed.to_text(), field(v, "text"), "{name}");
        let env = envelope(v);
        let opened = env.open(&hex(field(v, "sealed")), &ctx).await.unwrap();
        assert_eq!(opened.expose_secret(), &plaintext[..], "{name}");
        let opened = env.open_text(field(v, "text"), &ctx).await.unwrap();
        assert_eq!(opened.expose_secret(), &plaintext[..], "{name}");
    }
}

/// `FORMAT.md`, written again from the specification with raw primitives only.
fn independent_seal(v: &Vector) -> Vec<u8> {
    independent_seal_with(v, "local", &hex(field(v, "master_key")))
}

/// As [`independent_seal`], for any backend whose wrapped key is the local one's under
/// the 32-byte `kek`.
fn independent_seal_with(v: &Vector, backend: &str, master: &[u8]) -> Vec<u8> {
    let dek = hex(field(v, "dek"));
    let ctx = hex(field(v, "context_canonical"));
    let aad = |purpose: u8| [b"SRE".as_slice(), &[1, 1, purpose], &ctx].concat();
    let gcm = |key: &[u8], nonce: &[u8], aad: &[u8], data: &[u8]| {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
        let mut buf = data.to_vec();
        key.seal_in_place_append_tag(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(aad),
            &mut buf,
        )
        .unwrap();
        buf
    };
    // HKDF-Expand(PRK = DEK, info, 64) computed by hand from HMAC-SHA-256 (RFC 5869).
    let info = b"strongroom sre v1 s1";
    let prk = hmac::Key::new(hmac::HMAC_SHA256, &dek);
    let t1 = hmac::sign(&prk, &[info.as_slice(), &[1]].concat());
    let t2 = hmac::sign(&prk, &[t1.as_ref(), info.as_slice(), &[2]].concat());
    let enc = t1.as_ref().to_vec();
    let commitment = t2.as_ref().to_vec();
    let wrap_nonce = hex(field(v, "wrap_nonce"));
    let payload_nonce = hex(field(v, "payload_nonce"));
    let wrapped = [wrap_nonce.clone(), gcm(master, &wrap_nonce, &aad(2), &dek)].concat();
    let ciphertext = gcm(&enc, &payload_nonce, &aad(1), &hex(field(v, "plaintext")));
    let key_id = field(v, "key_id").as_bytes();
    let version: u32 = field(v, "key_version").parse().unwrap();
    let mut out = b"SRE\x01\x01".to_vec();
    out.push(backend.len() as u8);
    out.extend_from_slice(backend.as_bytes());
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&payload_nonce);
    out.extend_from_slice(&commitment);
    out.extend_from_slice(&(ciphertext.len() as u32).to_be_bytes());
    out.extend_from_slice(&ciphertext);
    out
}

#[test]
fn an_independent_implementation_agrees() {
    for v in &load("envelope_v1_pass.txt") {
        assert_eq!(
            independent_seal(v),
            hex(field(v, "sealed")),
            "{}",
            field(v, "name")
        );
    }
}

#[tokio::test]
async fn fail_vectors_are_refused_as_stated() {
    let vectors = load("envelope_v1_fail.txt");
    assert!(vectors.len() >= 20);
    for v in &vectors {
        let name = field(v, "name");
        let env = envelope(v);
        let ctx = context(v);
        let result = match v.iter().find(|(k, _)| k == "text") {
            Some((_, text)) => env.open_text(text, &ctx).await,
            None => env.open(&hex(field(v, "sealed")), &ctx).await,
        };
        let err = result.expect_err(name);
        let got = error_name(&err);
        assert_eq!(got, field(v, "expect"), "{name}");
        if let Some((_, sealed)) = v.iter().find(|(k, _)| k == "sealed") {
            // Parsing alone agrees with opening on structural errors.
            if got.starts_with("malformed") || got.starts_with("unsupported") {
                assert!(Sealed::from_bytes(&hex(sealed)).is_err(), "{name}");
            }
        }
    }
}

/// The vectors' name of an error.
fn error_name(err: &Error) -> String {
    match err {
        Error::Refused => "refused".to_owned(),
        Error::Malformed { field } => format!("malformed:{field}"),
        Error::UnsupportedVersion { .. } => "unsupported_version".to_owned(),
        Error::UnsupportedSuite { .. } => "unsupported_suite".to_owned(),
        Error::UnknownBackend { .. } => "unknown_backend".to_owned(),
        Error::KeyNotHeld { .. } => "key_not_held".to_owned(),
        other => format!("{other:?}"),
    }
}

fn argon2_params(v: &Vector) -> Argon2Params {
    Argon2Params {
        memory_kib: field(v, "argon2_m").parse().unwrap(),
        iterations: field(v, "argon2_t").parse().unwrap(),
        parallelism: field(v, "argon2_p").parse().unwrap(),
    }
}

fn passphrase_kek(v: &Vector) -> PassphraseKek {
    PassphraseKek::derive(
        field(v, "passphrase").as_bytes(),
        field(v, "salt"),
        argon2_params(v),
    )
    .unwrap()
}

#[tokio::test]
async fn passphrase_vector_matches_byte_for_byte() {
    let vectors = load("envelope_v1_passphrase_pass.txt");
    assert_eq!(vectors.len(), 1);
    for v in &vectors {
        let name = field(v, "name");
        let kek = passphrase_kek(v);
        assert_eq!(kek.primary_key().id, field(v, "key_id"), "{name}");
        assert_eq!(kek.primary_key().version, 1, "{name}");
        let ctx = context(v);
        assert_eq!(ctx.canonical_bytes(), hex(field(v, "context_canonical")));
        assert_eq!(hazmat::wrap_aad(&ctx), hex(field(v, "wrap_aad")));
        assert_eq!(hazmat::payload_aad(&ctx), hex(field(v, "payload_aad")));
        let dek = DataKey::from_slice(&hex(field(v, "dek"))).unwrap();
        assert_eq!(
            hazmat::commitment(&dek).unwrap().to_vec(),
            hex(field(v, "commitment"))
        );
        let plaintext = hex(field(v, "plaintext"));
        let sealed = hazmat::seal_passphrase_with(
            &kek,
            &dek,
            arr(field(v, "wrap_nonce")),
            arr(field(v, "payload_nonce")),
            &plaintext,
            &ctx,
        )
        .unwrap();
        assert_eq!(sealed.to_bytes(), hex(field(v, "sealed")), "{name}");
        assert_eq!(sealed.to_text(), field(v, "text"), "{name}");
        let env = Envelope::new(kek).unwrap();
        let opened = env.open(&hex(field(v, "sealed")), &ctx).await.unwrap();
        assert_eq!(opened.expose_secret(), &plaintext[..], "{name}");
        let opened = env.open_text(field(v, "text"), &ctx).await.unwrap();
        assert_eq!(opened.expose_secret(), &plaintext[..], "{name}");
    }
}

/// A passphrase key id read by the rule of `FORMAT.md`: the three parameters, then the
/// salt up to the last `-` (a base64url salt may hold `-` itself), then the fingerprint.
fn parse_passphrase_key_id(id: &str) -> Option<(u32, u32, u32, &str, &str)> {
    let rest = id.strip_prefix("argon2id-m")?;
    let (m, rest) = rest.split_once("-t")?;
    let (t, rest) = rest.split_once("-p")?;
    let (p, rest) = rest.split_once('-')?;
    let (salt, fp) = rest.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let hex16 = fp.len() == 16 && fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !(digits(m) && digits(t) && digits(p) && hex16) {
        return None;
    }
    Some((m.parse().ok()?, t.parse().ok()?, p.parse().ok()?, salt, fp))
}

#[test]
fn passphrase_vector_by_an_independent_implementation() {
    use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
    use base64ct::Encoding as _;
    for v in &load("envelope_v1_passphrase_pass.txt") {
        // The key id, read back into what derived the key.
        let (m, t, p, salt, fp) = parse_passphrase_key_id(field(v, "key_id")).unwrap();
        assert!(
            salt.contains('-'),
            "the vector exercises a salt holding '-'"
        );
        assert_eq!(salt, field(v, "salt"));
        let params = argon2_params(v);
        assert_eq!(
            (m, t, p),
            (params.memory_kib, params.iterations, params.parallelism)
        );
        // Argon2id (RFC 9106, version 0x13, 32-byte output) with the configured salt.
        let salt_bytes = base64ct::Base64UrlUnpadded::decode_vec(field(v, "salt")).unwrap();
        let mut kek = [0u8; 32];
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(m, t, p, Some(32)).unwrap(),
        )
        .hash_password_into(field(v, "passphrase").as_bytes(), &salt_bytes, &mut kek)
        .unwrap();
        assert_eq!(kek.to_vec(), hex(field(v, "kek")));
        // The fingerprint, as for a master key.
        struct Len8;
        impl aws_lc_rs::hkdf::KeyType for Len8 {
            fn len(&self) -> usize {
                8
            }
        }
        let mut id = [0u8; 8];
        Salt::new(HKDF_SHA256, b"strongroom master key id")
            .extract(&kek)
            .expand(&[b"fingerprint v1"], Len8)
            .unwrap()
            .fill(&mut id)
            .unwrap();
        let expected_fp: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(fp, expected_fp);
        assert_eq!(
            independent_seal_with(v, "passphrase", &kek),
            hex(field(v, "sealed"))
        );
    }
}

#[tokio::test]
async fn passphrase_fail_vectors_are_refused_as_stated() {
    let vectors = load("envelope_v1_passphrase_fail.txt");
    assert!(vectors.len() >= 8);
    for v in &vectors {
        let name = field(v, "name");
        let env = Envelope::new(passphrase_kek(v)).unwrap();
        let err = env
            .open(&hex(field(v, "sealed")), &context(v))
            .await
            .expect_err(name);
        assert_eq!(error_name(&err), field(v, "expect"), "{name}");
    }
}

/// The `pkcs11` backend's vector (FORMAT.md, section 6): the header names the backend,
/// the key label and version 1; the wrapped key is IV || AES-256-GCM(KEK, IV, wrap AAD,
/// DEK), 60 bytes; an independent implementation produces the same bytes. That a real
/// token produces and opens this form is checked in `tests/pkcs11.rs`.
#[test]
fn pkcs11_vector_by_an_independent_implementation() {
    let vectors = load("envelope_v1_pkcs11_pass.txt");
    assert_eq!(vectors.len(), 1);
    let v = &vectors[0];
    let ctx = context(v);
    assert_eq!(
        hex(field(v, "context_canonical")),
        hazmat::wrap_aad(&ctx)[6..].to_vec()
    );
    assert_eq!(hex(field(v, "wrap_aad")), hazmat::wrap_aad(&ctx));
    assert_eq!(hex(field(v, "payload_aad")), hazmat::payload_aad(&ctx));
    let dek = DataKey::from_slice(&hex(field(v, "dek"))).unwrap();
    assert_eq!(
        hex(field(v, "commitment")),
        hazmat::commitment(&dek).unwrap().to_vec()
    );

    let sealed = hex(field(v, "sealed"));
    assert_eq!(
        independent_seal_with(v, "pkcs11", &hex(field(v, "kek"))),
        sealed
    );
    let parsed = Sealed::from_bytes(&sealed).unwrap();
    assert_eq!(parsed.backend(), "pkcs11");
    assert_eq!(parsed.key().id, field(v, "key_id"));
    assert_eq!(parsed.key().version, 1);
    assert_eq!(parsed.to_text(), field(v, "text"));
    assert_eq!(Sealed::from_text(field(v, "text")).unwrap(), parsed);

    // The wrapped key where section 4 puts it: 60 bytes, IV first, and it opens to the
    // DEK under the KEK and the wrap AAD.
    let wrapped = hex(field(v, "wrapped"));
    assert_eq!(wrapped.len(), 60);
    assert_eq!(wrapped[..12], hex(field(v, "wrap_nonce"))[..]);
    let offset = 3 + 1 + 1 + 1 + "pkcs11".len() + 1 + field(v, "key_id").len() + 4 + 2;
    assert_eq!(sealed[offset - 2..offset], [0, 60]);
    assert_eq!(sealed[offset..offset + 60], wrapped[..]);
    let kek = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &hex(field(v, "kek"))).unwrap());
    let mut buf = wrapped[12..].to_vec();
    let opened = kek
        .open_in_place(
            Nonce::try_assume_unique_for_key(&wrapped[..12]).unwrap(),
            Aad::from(hazmat::wrap_aad(&ctx)),
            &mut buf,
        )
        .unwrap();
    assert_eq!(opened, dek.expose_secret());
}
