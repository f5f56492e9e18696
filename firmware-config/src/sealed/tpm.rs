//! The TPM side of sealing: a data key sealed to PCR values under a primary key made
//! afresh each time from the owner hierarchy's seed (same template, same key), and
//! unsealed through a PolicyPCR session.
//!
//! swtpm and /dev/tpm0 have no resource manager: every transient handle (primary, loaded
//! object, session) is flushed before returning, on success and on failure.

use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use tss_esapi::{
    abstraction::pcr,
    attributes::ObjectAttributesBuilder,
    constants::SessionType,
    handles::{KeyHandle, ObjectHandle, SessionHandle},
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
        resource_handles::Hierarchy,
        session_handles::{AuthSession, PolicySession},
    },
    structures::{
        Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
        Private, Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
        SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
    },
    tcti_ldr::TctiNameConf,
    traits::{Marshall, UnMarshall},
    Context,
};
use zeroize::Zeroizing;

use super::pcrs::{PcrSelection, PCR_VALUE_LEN};

/// A TPM failure: the step and the TPM's own words.
#[derive(Debug, thiserror::Error)]
#[error("TPM: {step}: {source}")]
pub struct TpmError {
    /// What was being done.
    pub step: &'static str,
    /// What the TPM (or the TSS) said.
    pub source: tss_esapi::Error,
}

/// What `unseal_key` can run into.
#[derive(Debug, thiserror::Error)]
pub enum UnsealFailure {
    /// The sealed object does not load under this TPM's storage primary.
    #[error("the TPM cannot load the sealed key: {0}")]
    Load(TpmError),
    /// The PCR policy does not hold: the PCRs differ from the values sealed to.
    #[error("the TPM refuses to unseal: {0}")]
    Policy(TpmError),
    /// Anything else.
    #[error(transparent)]
    Other(TpmError),
}

fn step(step: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
    move |source| TpmError { step, source }
}

/// A connection to a TPM.
pub struct Tpm {
    pub(super) context: Context,
}

impl Tpm {
    /// Connect through `tcti` (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`).
    pub fn open(tcti: &str) -> Result<Tpm, TpmError> {
        let conf = TctiNameConf::from_str(tcti).map_err(step("the TCTI string"))?;
        let context = Context::new(conf).map_err(step("connecting"))?;
        Ok(Tpm { context })
    }

    /// The current values of the PCRs in `selection`, in its order.
    pub fn read_pcrs(
        &mut self,
        selection: &PcrSelection,
    ) -> Result<Vec<[u8; PCR_VALUE_LEN]>, TpmError> {
        let slots = slots(selection)?;
        let list = selection_list(&slots)?;
        let data = pcr::read_all(&mut self.context, list).map_err(step("reading PCRs"))?;
        let bank = data.pcr_bank(HashingAlgorithm::Sha256);
        slots
            .iter()
            .map(|slot| {
                let d = bank.and_then(|b| b.get_digest(*slot));
                let mut v = [0; PCR_VALUE_LEN];
                match d.map(Digest::value) {
                    Some(bytes) if bytes.len() == PCR_VALUE_LEN => {
                        v.copy_from_slice(bytes);
                        Ok(v)
                    }
                    _ => Err(TpmError {
                        step: "reading PCRs",
                        source: tss_esapi::Error::WrapperError(
                            tss_esapi::WrapperErrorKind::WrongValueFromTpm,
                        ),
                    }),
                }
            })
            .collect()
    }

    /// Seal `key` so that it unseals only while the PCRs of `selection` hold `values`.
    /// Returns the sealed object's TPMT_PUBLIC and TPM2B_PRIVATE buffer.
    pub fn seal_key(
        &mut self,
        key: &[u8],
        selection: &PcrSelection,
        values: &[[u8; PCR_VALUE_LEN]],
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let slots = slots(selection)?;
        let policy = self.pcr_policy_digest(&slots, values)?;
        let public = sealed_object_template(policy)?;
        let data = SensitiveData::try_from(key.to_vec()).map_err(step("the data key"))?;
        let primary = self.primary()?;
        let created = self.context.execute_with_nullauth_session(|ctx| {
            ctx.create(primary, public, None, Some(data), None, None)
        });
        self.flush(primary.into());
        let created = created.map_err(step("creating the sealed object"))?;
        let public = created
            .out_public
            .marshall()
            .map_err(step("encoding the sealed object"))?;
        Ok((public, created.out_private.value().to_vec()))
    }

    /// Unseal the data key sealed by [`Tpm::seal_key`] to the PCRs of `selection`.
    pub fn unseal_key(
        &mut self,
        public: &[u8],
        private: &[u8],
        selection: &PcrSelection,
    ) -> Result<Zeroizing<Vec<u8>>, UnsealFailure> {
        let other = UnsealFailure::Other;
        let slots = slots(selection).map_err(other)?;
        let list = selection_list(&slots).map_err(other)?;
        let public = Public::unmarshall(public)
            .map_err(step("decoding the sealed object"))
            .map_err(UnsealFailure::Load)?;
        let private = Private::try_from(private.to_vec())
            .map_err(step("decoding the sealed object"))
            .map_err(UnsealFailure::Load)?;
        let primary = self.primary().map_err(other)?;
        let loaded = self
            .context
            .execute_with_nullauth_session(|ctx| ctx.load(primary, private, public));
        self.flush(primary.into());
        let object = loaded
            .map_err(step("loading the sealed object"))
            .map_err(UnsealFailure::Load)?;
        let result = self.unseal_with_policy(object, list);
        self.flush(object.into());
        result
    }

    fn unseal_with_policy(
        &mut self,
        object: KeyHandle,
        list: PcrSelectionList,
    ) -> Result<Zeroizing<Vec<u8>>, UnsealFailure> {
        let session = self
            .start_session(SessionType::Policy)
            .map_err(UnsealFailure::Other)?;
        // An empty digest: the TPM takes the PCRs' current values.
        let result = policy_session(session)
            .and_then(|ps| {
                self.context
                    .policy_pcr(ps, Digest::default(), list)
                    .map_err(step("PolicyPCR"))
            })
            .map_err(UnsealFailure::Policy)
            .and_then(|()| {
                self.context
                    .execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
                    .map_err(step("unsealing"))
                    .map_err(UnsealFailure::Policy)
            })
            .map(|data| Zeroizing::new(data.value().to_vec()));
        self.flush(SessionHandle::from(session).into());
        result
    }

    /// The digest of PolicyPCR over `slots` holding `values`, computed by the TPM in a
    /// trial session.
    fn pcr_policy_digest(
        &mut self,
        slots: &[PcrSlot],
        values: &[[u8; PCR_VALUE_LEN]],
    ) -> Result<Digest, TpmError> {
        let list = selection_list(slots)?;
        let pcr_digest = Sha256::digest(values.concat());
        let pcr_digest = Digest::try_from(pcr_digest.to_vec()).map_err(step("PCR digest"))?;
        let session = self.start_session(SessionType::Trial)?;
        let result = policy_session(session).and_then(|ps| {
            self.context
                .policy_pcr(ps, pcr_digest, list)
                .map_err(step("PolicyPCR (trial)"))?;
            self.context
                .policy_get_digest(ps)
                .map_err(step("PolicyGetDigest"))
        });
        self.flush(SessionHandle::from(session).into());
        result
    }

    fn start_session(&mut self, kind: SessionType) -> Result<AuthSession, TpmError> {
        self.context
            .start_auth_session(
                None,
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(step("starting a session"))?
            .ok_or(TpmError {
                step: "starting a session",
                source: tss_esapi::Error::WrapperError(
                    tss_esapi::WrapperErrorKind::WrongValueFromTpm,
                ),
            })
    }

    /// The storage primary: an ECC P-256 restricted decryption key from the owner seed.
    /// The same template gives the same key on the same TPM, so nothing is stored.
    fn primary(&mut self) -> Result<KeyHandle, TpmError> {
        let template = primary_template()?;
        self.context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map(|r| r.key_handle)
            .map_err(step("creating the storage primary key"))
    }

    /// Flush a transient handle; a failure here leaves a slot used until the TPM resets,
    /// which the next command would report, so it is not hidden but not fatal either.
    fn flush(&mut self, handle: ObjectHandle) {
        let _ = self.context.flush_context(handle);
    }
}

fn policy_session(session: AuthSession) -> Result<PolicySession, TpmError> {
    PolicySession::try_from(session).map_err(step("policy session"))
}

fn slots(selection: &PcrSelection) -> Result<Vec<PcrSlot>, TpmError> {
    selection
        .indices()
        .iter()
        .map(|i| PcrSlot::try_from(1u32 << i).map_err(step("PCR selection")))
        .collect()
}

fn selection_list(slots: &[PcrSlot]) -> Result<PcrSelectionList, TpmError> {
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, slots)
        .build()
        .map_err(step("PCR selection"))
}

fn primary_template() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(step("primary template"))?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(step("primary template"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(step("primary template"))
}

/// A sealed data object that only a policy session can open (no userWithAuth), bound to
/// this TPM and this parent.
fn sealed_object_template(policy: Digest) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_admin_with_policy(true)
        .with_user_with_auth(false)
        .build()
        .map_err(step("sealed object template"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(step("sealed object template"))
}
