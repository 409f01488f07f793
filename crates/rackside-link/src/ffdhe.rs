//! Finite-field Diffie-Hellman over the RFC 7919 groups for the paper profile.
//!
//! rustls 0.23 negotiates FFDHE in TLS 1.2 but its ring provider has no FFDHE arithmetic, so
//! this module supplies it. crypto-bigint's Montgomery exponentiation runs in constant time for
//! a fixed exponent width, which keeps the private exponent out of the timing.

use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, Uint, U2048, U3072, U512};
use rand::rngs::OsRng;
use rand::RngCore;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::NamedGroup;
use zeroize::Zeroize;

/// ffdhe2048 (RFC 7919 appendix A.1).
pub static FFDHE2048: &dyn SupportedKxGroup = &Ffdhe::<{ U2048::LIMBS }> {
    name: NamedGroup::FFDHE2048,
    group: rustls::ffdhe_groups::FFDHE2048,
};

/// ffdhe3072 (RFC 7919 appendix A.2).
pub static FFDHE3072: &dyn SupportedKxGroup = &Ffdhe::<{ U3072::LIMBS }> {
    name: NamedGroup::FFDHE3072,
    group: rustls::ffdhe_groups::FFDHE3072,
};

/// One FFDHE group with a modulus of `LIMBS` machine words.
#[derive(Debug)]
struct Ffdhe<const LIMBS: usize> {
    name: NamedGroup,
    group: FfdheGroup<'static>,
}

impl<const LIMBS: usize> Ffdhe<LIMBS> {
    fn byte_len() -> usize {
        Uint::<LIMBS>::BYTES
    }

    /// Reads a big-endian value of at most the modulus width.
    fn read(bytes: &[u8]) -> Option<Uint<LIMBS>> {
        let width = Self::byte_len();
        if bytes.is_empty() || bytes.len() > width {
            return None;
        }
        let mut padded = vec![0u8; width];
        padded
            .get_mut(width - bytes.len()..)?
            .copy_from_slice(bytes);
        Some(Uint::from_be_slice(&padded))
    }

    fn params(&self) -> Result<MontyParams<LIMBS>, rustls::Error> {
        let modulus = Self::read(self.group.p)
            .and_then(|p| Option::from(Odd::new(p)))
            .ok_or_else(|| rustls::Error::General("FFDHE modulus does not fit".into()))?;
        // The modulus is public, so variable-time setup leaks nothing.
        Ok(MontyParams::new_vartime(modulus))
    }
}

impl<const LIMBS: usize> SupportedKxGroup for Ffdhe<LIMBS> {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let params = self.params()?;
        let generator = Self::read(self.group.g)
            .ok_or_else(|| rustls::Error::General("FFDHE generator does not fit".into()))?;

        // RFC 7919 section 5.2 allows a short exponent of at least twice the group's security
        // strength (about 112 bits for ffdhe2048, 128 for ffdhe3072); 512 bits is well above.
        let mut random = zeroize::Zeroizing::new([0u8; U512::BYTES]);
        OsRng.fill_bytes(random.as_mut());
        let private = U512::from_be_slice(random.as_ref());
        let public = MontyForm::new(&generator, params).pow(&private).retrieve();

        Ok(Box::new(FfdheExchange {
            name: self.name,
            group: self.group,
            params,
            private,
            public: uint_to_bytes(&public),
        }))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        Some(self.group)
    }

    fn name(&self) -> NamedGroup {
        self.name
    }
}

/// Our half of one FFDHE exchange. The private exponent is wiped on drop.
struct FfdheExchange<const LIMBS: usize> {
    name: NamedGroup,
    group: FfdheGroup<'static>,
    params: MontyParams<LIMBS>,
    private: U512,
    public: Vec<u8>,
}

impl<const LIMBS: usize> Drop for FfdheExchange<LIMBS> {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl<const LIMBS: usize> ActiveKeyExchange for FfdheExchange<LIMBS> {
    fn complete(self: Box<Self>, peer_public: &[u8]) -> Result<SharedSecret, rustls::Error> {
        // 1. Parse the peer's value and check 1 < y < p - 1 (RFC 7919 section 5.1), which
        //    rules out the small-subgroup values 0, 1 and p - 1.
        let invalid = || rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::InvalidKeyShare);
        let peer = Ffdhe::<LIMBS>::read(peer_public).ok_or_else(invalid)?;
        let p_minus_one = self.params.modulus().get().wrapping_sub(&Uint::ONE);
        if peer <= Uint::ONE || peer >= p_minus_one {
            return Err(invalid());
        }

        // 2. Refuse our own value reflected back: no honest peer picks the same exponent.
        if peer == Ffdhe::<LIMBS>::read(&self.public).ok_or_else(invalid)? {
            tracing::debug!(group = ?self.name, "peer reflected our FFDHE key share");
            return Err(invalid());
        }

        // 3. Compute the shared secret; rustls strips its leading zeros for TLS 1.2.
        let mut shared = MontyForm::new(&peer, self.params)
            .pow(&self.private)
            .retrieve();
        let secret = SharedSecret::from(uint_to_bytes(&shared));
        shared.zeroize();
        Ok(secret)
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        Some(self.group)
    }

    fn group(&self) -> NamedGroup {
        self.name
    }
}

fn uint_to_bytes<const LIMBS: usize>(value: &Uint<LIMBS>) -> Vec<u8> {
    let mut out = Vec::with_capacity(Uint::<LIMBS>::BYTES);
    for limb in value.as_limbs().iter().rev() {
        out.extend_from_slice(&limb.0.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_secret() {
        let alice = FFDHE2048.start().unwrap();
        let bob = FFDHE2048.start().unwrap();
        let alice_public = alice.pub_key().to_vec();
        let bob_public = bob.pub_key().to_vec();
        assert_eq!(alice_public.len(), 256);
        let a = alice.complete(&bob_public).unwrap();
        let b = bob.complete(&alice_public).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
    }

    #[test]
    fn reflected_key_share_is_refused() {
        let alice = FFDHE2048.start().unwrap();
        let own = alice.pub_key().to_vec();
        assert!(alice.complete(&own).is_err());
    }

    #[test]
    fn degenerate_key_shares_are_refused() {
        let p = rustls::ffdhe_groups::FFDHE2048.p;
        let mut p_minus_one = p.to_vec();
        if let Some(last) = p_minus_one.last_mut() {
            *last -= 1;
        }
        for bad in [
            vec![0u8],
            vec![1u8],
            p_minus_one,
            p.to_vec(),
            vec![1u8; 257],
            vec![],
        ] {
            let exchange = FFDHE2048.start().unwrap();
            assert!(
                exchange.complete(&bad).is_err(),
                "accepted {} bytes",
                bad.len()
            );
        }
    }
}
