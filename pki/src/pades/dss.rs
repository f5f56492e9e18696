//! The Document Security Store (ETSI EN 319 142-1 5.4.2, ISO 32000-2 12.8.4.3): the
//! certificates, OCSP answers and CRLs a validator needs years later, in one revision.

use sha1::{Digest, Sha1};

use super::document::Document;
use super::object::{hex_upper, Dict, Object};
use super::source::Source;
use super::update::{Revision, UpdateBuilder};
use super::{PdfError, Result};

/// Validation material, each item DER.
#[derive(Clone, Debug, Default)]
pub struct ValidationData {
    /// Certificates.
    pub certs: Vec<Vec<u8>>,
    /// OCSP responses (whole OCSPResponse structures).
    pub ocsps: Vec<Vec<u8>>,
    /// CRLs.
    pub crls: Vec<Vec<u8>>,
}

impl<S: Source> Document<S> {
    /// A revision adding `data` to the document's DSS (made if missing), with a /VRI entry
    /// for each signature in `signatures` (the bytes of its `/Contents`).
    pub fn prepare_dss(&self, signatures: &[&[u8]], data: &ValidationData) -> Result<Revision> {
        let mut update = UpdateBuilder::new(self);
        let catalog_ref = self.root()?;
        let mut catalog = self.catalog()?;
        let (mut dss, dss_ref) = match catalog.get("DSS") {
            Some(Object::Ref(r)) => match self.get(*r)? {
                Object::Dict(d) => (d, *r),
                _ => return Err(PdfError::malformed("/DSS is not a dictionary")),
            },
            Some(Object::Dict(d)) => (d.clone(), update.alloc()),
            None => (Dict::new(), update.alloc()),
            Some(_) => return Err(PdfError::malformed("/DSS is not a dictionary")),
        };

        let refs_of = |items: &[Vec<u8>], update: &mut UpdateBuilder<'_, S>| {
            let mut seen: Vec<&[u8]> = Vec::new();
            let mut refs = Vec::new();
            for item in items {
                if seen.contains(&item.as_slice()) {
                    continue;
                }
                seen.push(item);
                let r = update.alloc();
                update.put_stream(r, Dict::new(), item);
                refs.push(Object::Ref(r));
            }
            refs
        };
        let certs = refs_of(&data.certs, &mut update);
        let ocsps = refs_of(&data.ocsps, &mut update);
        let crls = refs_of(&data.crls, &mut update);

        for (key, new) in [("Certs", &certs), ("OCSPs", &ocsps), ("CRLs", &crls)] {
            if new.is_empty() {
                continue;
            }
            let mut items = match dss.get(key).map(|v| self.resolve(v)).transpose()? {
                Some(Object::Array(a)) => a,
                None => Vec::new(),
                Some(_) => return Err(PdfError::Malformed(format!("/DSS /{key} is not an array"))),
            };
            items.extend(new.iter().cloned());
            dss.set(key, Object::Array(items));
        }

        if !signatures.is_empty() {
            let mut vri = match dss.get("VRI").map(|v| self.resolve(v)).transpose()? {
                Some(Object::Dict(d)) => d,
                None => Dict::new(),
                Some(_) => return Err(PdfError::malformed("/DSS /VRI is not a dictionary")),
            };
            for contents in signatures {
                let mut entry = Dict::new();
                for (key, refs) in [("Cert", &certs), ("OCSP", &ocsps), ("CRL", &crls)] {
                    if !refs.is_empty() {
                        entry.set(key, Object::Array(refs.clone()));
                    }
                }
                vri.set(&hex_upper(&Sha1::digest(contents)), Object::Dict(entry));
            }
            dss.set("VRI", Object::Dict(vri));
        }

        dss.set("Type", Object::name("DSS"));
        update.put(dss_ref, Object::Dict(dss));
        catalog.set("DSS", Object::Ref(dss_ref));
        update.put(catalog_ref, Object::Dict(catalog));
        Ok(update.finish().0)
    }
}
