//! A PKCS#11 module for tests that stands between signetd and a real module (SoftHSM):
//! every call goes through unchanged, except that while the file named by
//! `SIGNET_FAULT_FLIP_FILE` exists, each signature `C_Sign` returns has one bit flipped, as
//! a token with a CRT fault would return it. The end-to-end tests use it to show that no
//! such signature leaves the appliance (`tests/tests/token_fault.rs`).
//!
//! `SIGNET_FAULT_TARGET` names the real module. Never packaged: tests only.

// A PKCS#11 module is a C ABI: exported functions that take raw pointers.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use cryptoki_sys::{
    CKR_ARGUMENTS_BAD, CKR_GENERAL_ERROR, CKR_OK, CK_BYTE_PTR, CK_FUNCTION_LIST,
    CK_FUNCTION_LIST_PTR_PTR, CK_RV, CK_SESSION_HANDLE, CK_ULONG, CK_ULONG_PTR,
};

/// The real module's function list with `C_Sign` replaced, and the library kept loaded.
struct Shim {
    list: CK_FUNCTION_LIST,
    real_sign: unsafe extern "C" fn(
        CK_SESSION_HANDLE,
        CK_BYTE_PTR,
        CK_ULONG,
        CK_BYTE_PTR,
        CK_ULONG_PTR,
    ) -> CK_RV,
    _library: libloading::Library,
}

static SHIM: OnceLock<Option<Shim>> = OnceLock::new();

fn load() -> Option<Shim> {
    let target = std::env::var_os("SIGNET_FAULT_TARGET")?;
    // SAFETY: loading a PKCS#11 module runs its initialisers; the test names a real one.
    let library = unsafe { libloading::Library::new(target) }.ok()?;
    // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module.
    let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
        unsafe { library.get(b"C_GetFunctionList\0") }.ok()?;
    let mut real: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: `real` is a valid place for the module to write its list's address.
    if unsafe { get(&mut real) } != CKR_OK || real.is_null() {
        return None;
    }
    // SAFETY: the module returned a valid list, which lives as long as the library.
    let mut list = unsafe { *real };
    let real_sign = list.C_Sign?;
    list.C_Sign = Some(faulty_sign);
    Some(Shim {
        list,
        real_sign,
        _library: library,
    })
}

fn shim() -> Option<&'static Shim> {
    SHIM.get_or_init(load).as_ref()
}

/// Whether signatures are to be corrupted now.
fn flipping() -> bool {
    std::env::var_os("SIGNET_FAULT_FLIP_FILE").is_some_and(|f| PathBuf::from(f).exists())
}

/// The real `C_Sign`, then one bit of the signature flipped while [`flipping`].
unsafe extern "C" fn faulty_sign(
    session: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    data_len: CK_ULONG,
    signature: CK_BYTE_PTR,
    signature_len: CK_ULONG_PTR,
) -> CK_RV {
    let Some(shim) = shim() else {
        return CKR_GENERAL_ERROR;
    };
    // SAFETY: the caller's arguments go on to the real module as they came.
    let rv = unsafe { (shim.real_sign)(session, data, data_len, signature, signature_len) };
    // A call with no buffer only asks for the length.
    if rv == CKR_OK && !signature.is_null() && !signature_len.is_null() && flipping() {
        // SAFETY: on CKR_OK the module wrote `*signature_len` bytes at `signature`.
        let len = unsafe { *signature_len } as usize;
        if len > 0 {
            // The middle byte: inside r or s of an ECDSA signature, inside an RSA one.
            unsafe { *signature.add(len / 2) ^= 0x01 };
        }
    }
    rv
}

/// The module's entry point: the real module's list, with `C_Sign` wrapped.
///
/// # Safety
/// `list` must be a valid place to write a pointer, as PKCS#11 requires of the caller.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    match shim() {
        Some(shim) => {
            // SAFETY: checked non-null above; the list is static and never written again.
            unsafe { *list = std::ptr::addr_of!(shim.list).cast_mut() };
            CKR_OK
        }
        None => CKR_GENERAL_ERROR,
    }
}
