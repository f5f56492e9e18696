//! The JSON bodies of the CSC routes. pyHanko's `CSCSigner` speaks v1.0.4 (`hash`,
//! `hashAlgo`); v2 renamed them (`hashes`, `hashAlgorithmOID`): both spellings are taken on
//! both paths. Unknown fields are ignored, as the specification asks of servers.

use serde::Deserialize;

/// `info`.
#[derive(Deserialize, Default)]
pub struct InfoRequest {
    /// The language asked for (answers are in en-US whatever it is).
    #[allow(dead_code)]
    pub lang: Option<String>,
}

/// `credentials/list`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Also return each credential's info (v2).
    pub credential_info: Option<bool>,
    /// With `credential_info`: which certificates (`none`, `single`, `chain`).
    pub certificates: Option<String>,
    /// With `credential_info`: the certificate's details.
    pub cert_info: Option<bool>,
    /// Most credentials to return.
    pub max_results: Option<i64>,
}

/// `credentials/info`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoOfCredential {
    /// The credential (a signing key label).
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// `none`, `single` (the default) or `chain`.
    pub certificates: Option<String>,
    /// Whether to return the certificate's details.
    pub cert_info: Option<bool>,
}

/// `credentials/authorize`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// How many signatures the SAD is for.
    pub num_signatures: u64,
    /// The hashes (base64) the SAD is bound to; required (SCAL 2).
    #[serde(alias = "hash")]
    pub hashes: Option<Vec<String>>,
    /// Their hash algorithm, if the client says it.
    #[serde(rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm: Option<String>,
}

/// `signatures/signHash`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignHashRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// The SAD from `credentials/authorize`.
    #[serde(rename = "SAD")]
    pub sad: Option<String>,
    /// The hashes to sign (base64).
    #[serde(alias = "hash")]
    pub hashes: Vec<String>,
    /// Their hash algorithm, where `sign_algo` does not name it.
    #[serde(rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm: Option<String>,
    /// The signature algorithm OID.
    pub sign_algo: String,
    /// Its parameters, base64 DER (RSASSA-PSS).
    pub sign_algo_params: Option<String>,
    /// `S` (synchronous, the default) only.
    pub operation_mode: Option<String>,
}
