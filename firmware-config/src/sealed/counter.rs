//! A monotonic counter in the TPM's NV memory (an index of type TPM2_NT_COUNTER): it can
//! only go up, and nothing on the disk can put it back. The audit log writes its value into
//! each signed anchor, so an older anchor put back beside a truncated log shows: the
//! counter is ahead of it.
//!
//! The index is defined once, in the owner hierarchy (empty owner auth, as sealing assumes),
//! with an empty auth value of its own: it is read and incremented with that, so a TPM whose
//! owner auth is set later still serves it. It is created `no_da`: an empty auth cannot be
//! guessed, and wrong tries must not lock the TPM out.
//!
//! NV memory wears: a TPM promises some hundred thousand writes to an index or more (and
//! many rate-limit NV writes). The audit log increments once per checkpoint, at most once a
//! minute by default (`audit.checkpoint_secs`): about half a million a year at the busiest.

use tss_esapi::{
    abstraction::nv,
    attributes::NvIndexAttributesBuilder,
    constants::NvIndexType,
    handles::{NvIndexHandle, NvIndexTpmHandle, ObjectHandle, TpmHandle},
    interface_types::{
        algorithm::HashingAlgorithm,
        resource_handles::{NvAuth, Provision},
    },
    structures::NvPublicBuilder,
};

use super::tpm::{Tpm, TpmError};

/// The first and last NV index of the owner range (TCG handle registry): where an index
/// of the platform's owner belongs.
pub const OWNER_NV_RANGE: (u32, u32) = (0x0100_0000, 0x013F_FFFF);

/// What a counter index may go wrong with.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// The TPM failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The index exists but is not a counter of 8 bytes: someone else's.
    #[error(
        "NV index {index:#010x} exists but is not an 8-byte counter ({found}): another \
         program uses it; choose another index (audit.tpm_counter_index)"
    )]
    NotACounter {
        /// The index.
        index: u32,
        /// What it is.
        found: String,
    },
    /// The index is outside the owner range.
    #[error("NV index {0:#010x} is not in the owner range 0x01000000 to 0x013fffff")]
    OutOfRange(u32),
    /// The TPM answered a read with other than 8 bytes.
    #[error("NV index {index:#010x}: the TPM returned {len} bytes for an 8-byte counter")]
    BadValue {
        /// The index.
        index: u32,
        /// How many bytes came.
        len: usize,
    },
}

fn wrong_value(step: &'static str) -> TpmError {
    TpmError {
        step,
        source: tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::WrongValueFromTpm),
    }
}

/// What the TPM holds at a counter index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterState {
    /// No index is defined there.
    Absent,
    /// Defined, never incremented (a counter has no value until its first increment).
    Unwritten,
    /// Its value.
    Value(u64),
}

impl Tpm {
    /// What counter index `index` holds now.
    pub fn counter_state(&mut self, index: u32) -> Result<CounterState, CounterError> {
        let tpm_index = nv_index(index)?;
        let listed = nv::list(&mut self.context).map_err(step("listing NV indices"))?;
        let Some((public, _)) = listed.into_iter().find(|(p, _)| p.nv_index() == tpm_index) else {
            return Ok(CounterState::Absent);
        };
        let attributes = public.attributes();
        let kind = attributes
            .index_type()
            .map_err(step("reading the NV index's type"))?;
        if kind != NvIndexType::Counter || public.data_size() != 8 {
            return Err(CounterError::NotACounter {
                index,
                found: format!("{kind:?}, {} bytes", public.data_size()),
            });
        }
        if !attributes.written() {
            return Ok(CounterState::Unwritten);
        }
        let handle = self.nv_handle(tpm_index)?;
        let read = self.context.execute_with_nullauth_session(|ctx| {
            ctx.nv_read(NvAuth::NvIndex(handle), handle, 8, 0)
        });
        self.close(handle);
        let data = read.map_err(step("reading the NV counter"))?;
        let bytes: [u8; 8] = data
            .value()
            .try_into()
            .map_err(|_| CounterError::BadValue {
                index,
                len: data.value().len(),
            })?;
        Ok(CounterState::Value(u64::from_be_bytes(bytes)))
    }

    /// Define counter index `index` if absent, and give it its first value if it has none;
    /// returns its value. Running it again changes nothing.
    pub fn counter_prepare(&mut self, index: u32) -> Result<u64, CounterError> {
        match self.counter_state(index)? {
            CounterState::Value(v) => return Ok(v),
            CounterState::Unwritten => {}
            CounterState::Absent => self.counter_define(index)?,
        }
        self.counter_increment(index)
    }

    /// Increment counter index `index` (TPM2_NV_Increment); returns its new value.
    pub fn counter_increment(&mut self, index: u32) -> Result<u64, CounterError> {
        let handle = self.nv_handle(nv_index(index)?)?;
        let done = self
            .context
            .execute_with_nullauth_session(|ctx| ctx.nv_increment(NvAuth::NvIndex(handle), handle));
        self.close(handle);
        done.map_err(step("incrementing the NV counter"))?;
        match self.counter_state(index)? {
            CounterState::Value(v) => Ok(v),
            _ => Err(wrong_value("reading the NV counter after incrementing it").into()),
        }
    }

    fn counter_define(&mut self, index: u32) -> Result<(), CounterError> {
        let attributes = NvIndexAttributesBuilder::new()
            .with_nv_index_type(NvIndexType::Counter)
            .with_owner_write(true)
            .with_owner_read(true)
            .with_auth_write(true)
            .with_auth_read(true)
            .with_no_da(true)
            .build()
            .map_err(step("the NV counter's attributes"))?;
        let public = NvPublicBuilder::new()
            .with_nv_index(nv_index(index)?)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(8)
            .build()
            .map_err(step("the NV counter's template"))?;
        let defined = self.context.execute_with_nullauth_session(|ctx| {
            ctx.nv_define_space(Provision::Owner, None, public)
        });
        let mut handle = ObjectHandle::from(defined.map_err(step("defining the NV counter"))?);
        let _ = self.context.tr_close(&mut handle);
        Ok(())
    }

    fn nv_handle(&mut self, index: NvIndexTpmHandle) -> Result<NvIndexHandle, TpmError> {
        self.context
            .tr_from_tpm_public(TpmHandle::NvIndex(index))
            .map(NvIndexHandle::from)
            .map_err(step("opening the NV counter"))
    }

    /// Forget an ESYS handle (an NV index is not transient: nothing is flushed in the TPM).
    fn close(&mut self, handle: NvIndexHandle) {
        let mut handle = ObjectHandle::from(handle);
        let _ = self.context.tr_close(&mut handle);
    }
}

fn nv_index(index: u32) -> Result<NvIndexTpmHandle, CounterError> {
    if !(OWNER_NV_RANGE.0..=OWNER_NV_RANGE.1).contains(&index) {
        return Err(CounterError::OutOfRange(index));
    }
    NvIndexTpmHandle::new(index).map_err(|_| CounterError::OutOfRange(index))
}

fn step(step: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
    move |source| TpmError { step, source }
}
