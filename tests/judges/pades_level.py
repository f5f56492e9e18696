#!/usr/bin/env python3
"""pades_level.py FILE.pdf -- the PAdES baseline level (ETSI EN 319 142-1) each signature reaches.

pyHanko's `sign adesverify` judges trust and past validity but does not name a level, so this
script reads the file with pyHanko's parser and checks what each level must CONTAIN:
  B-B   /SubFilter /ETSI.CAdES.detached; signed attributes content-type, message-digest and
        signing-certificate-v2; no signing-time attribute
  B-T   + a signature-time-stamp unsigned attribute (or a document timestamp in a later revision)
  B-LT  + a /DSS, added after the signature, holding an OCSP response or a CRL for every
        certificate below the root of the signer's chain and of the signature timestamp's
        TSA chain
  B-LTA + a /DocTimeStamp (/ETSI.RFC3161) over a revision whose /DSS already held all that
        (doc_ts_tsa_revinfo says whether the /DSS now also covers that timestamp's TSA chain)
It checks contents only, not trust. Prints one JSON document on stdout; exit 0, or 2 when the
file cannot be read.
"""
import hashlib
import json
import sys

from asn1crypto import cms, crl, ocsp, tsp, x509  # noqa: F401 (tsp registers TSTInfo)
from pyhanko.pdf_utils.reader import PdfFileReader

SIGNING_CERT_V2 = '1.2.840.113549.1.9.16.2.47'
SIGNING_TIME = '1.2.840.113549.1.9.5'
CONTENT_TYPE = '1.2.840.113549.1.9.3'
MESSAGE_DIGEST = '1.2.840.113549.1.9.4'
SIGNATURE_TIME_STAMP = '1.2.840.113549.1.9.16.2.14'


def attr_types(attrs):
    return {a['type'].dotted for a in attrs} if attrs.native else set()


def cms_certs(signed_data):
    return [c.chosen for c in signed_data['certificates'] or [] if c.name == 'certificate']


def sid_cert(signed_data, signer_info):
    sid = signer_info['sid'].chosen
    for c in cms_certs(signed_data):
        if isinstance(sid, cms.IssuerAndSerialNumber):
            if c.serial_number == sid['serial_number'].native and c.issuer == sid['issuer']:
                return c
        elif c.key_identifier == sid.native:
            return c
    return None


def chain_below_root(leaf, pool):
    """The leaf and its issuers found in `pool`, up to but without the self-signed root."""
    out, cert, seen = [], leaf, set()
    while cert is not None and cert.subject != cert.issuer and cert.sha256 not in seen:
        seen.add(cert.sha256)
        out.append(cert)
        cert = next((c for c in pool if c.subject == cert.issuer), None)
    return out, cert is not None and cert.subject == cert.issuer


def dss_content(r, revision=None):
    """The /DSS as of `revision` (the latest one when None)."""
    if revision is None:
        root = r.root
        resolve = lambda o: o.get_object()  # noqa: E731
    else:
        hist = r.get_historical_resolver(revision)
        root = hist.root
        resolve = lambda o: hist(o.reference) if hasattr(o, 'reference') else o  # noqa: E731
    if '/DSS' not in root:
        return None
    dss = resolve(root.raw_get('/DSS'))

    def items(key, load):
        arr = resolve(dss.raw_get(key)) if key in dss else []
        return [load(resolve(o).data) for o in arr]
    ocsps = items('/OCSPs', ocsp.OCSPResponse.load)
    crls = items('/CRLs', crl.CertificateList.load)
    certs = items('/Certs', x509.Certificate.load)
    vri = sorted(str(k).lstrip('/') for k in resolve(dss.raw_get('/VRI')).keys()) if '/VRI' in dss else []
    # The first revision holding a /DSS: validation data must come after the signature.
    raw = r.root.raw_get('/DSS')
    revision_added = r.xrefs.get_introducing_revision(raw.reference) if hasattr(raw, 'reference') else None
    return {'ocsps': ocsps, 'crls': crls, 'certs': certs, 'vri': vri, 'revision': revision_added}


def has_revinfo(cert, dss):
    for o in dss['ocsps']:
        if o['response_status'].native != 'successful':
            continue
        basic = o['response_bytes']['response'].parsed
        for s in basic['tbs_response_data']['responses']:
            cid = s['cert_id']
            algo = cid['hash_algorithm']['algorithm'].native
            if cid['serial_number'].native == cert.serial_number and \
               cid['issuer_name_hash'].native == getattr(cert.issuer, algo):
                return True
    return any(c['tbs_cert_list']['issuer'] == cert.issuer for c in dss['crls'])


def tsa_chain(token_signed_data, pool):
    si = token_signed_data['signer_infos'][0]
    tsa = sid_cert(token_signed_data, si)
    if tsa is None:
        return None, False
    return chain_below_root(tsa, pool + cms_certs(token_signed_data))


def judge(r, sig, dss, doc_timestamps):
    si = sig.signer_info
    signed, unsigned = attr_types(si['signed_attrs']), attr_types(si['unsigned_attrs'])
    contents = sig.sig_object['/Contents'].original_bytes
    facts = {
        'field': sig.field_name,
        'revision': sig.signed_revision,
        'subfilter': str(sig.sig_object.get('/SubFilter')),
        'signed_attrs': sorted(signed),
        'unsigned_attrs': sorted(unsigned),
        'signing_time_attr': SIGNING_TIME in signed,
        'signing_certificate_v2': SIGNING_CERT_V2 in signed,
        'signature_time_stamp': SIGNATURE_TIME_STAMP in unsigned,
        'cms_certificates': len(cms_certs(sig.signed_data)),
        'vri_key': hashlib.sha1(contents).hexdigest().upper(),
        'notes': [],
    }
    notes = facts['notes']

    def done(level):
        facts['level'] = level
        return facts

    if facts['subfilter'] != '/ETSI.CAdES.detached':
        notes.append(f"SubFilter {facts['subfilter']}")
        return done('none')
    for oid, name in [(CONTENT_TYPE, 'content-type'), (MESSAGE_DIGEST, 'message-digest'),
                      (SIGNING_CERT_V2, 'signing-certificate-v2')]:
        if oid not in signed:
            notes.append(f'no {name} signed attribute')
    if facts['signing_time_attr']:
        notes.append('signing-time attribute present')
    if notes:
        return done('none')

    later_doc_ts = [t for t in doc_timestamps if t.signed_revision > sig.signed_revision]
    if not facts['signature_time_stamp'] and not later_doc_ts:
        return done('B-B')

    pool = cms_certs(sig.signed_data) + (dss['certs'] if dss else [])
    signer_chain, signer_rooted = chain_below_root(sig.signer_cert, pool)
    need = list(signer_chain)
    tsa_rooted = True
    for a in si['unsigned_attrs'] if facts['signature_time_stamp'] else []:
        if a['type'].dotted == SIGNATURE_TIME_STAMP:
            chain, rooted = tsa_chain(a['values'][0]['content'], pool)
            tsa_rooted &= rooted and chain is not None
            need += chain or []
    facts['chain_to_root'] = signer_rooted and tsa_rooted
    if dss is None:
        notes.append('no /DSS')
        return done('B-T')
    facts['dss_revision'] = dss['revision']
    facts['dss_ocsps'] = len(dss['ocsps'])
    facts['dss_crls'] = len(dss['crls'])
    facts['dss_certs'] = len(dss['certs'])
    facts['vri'] = facts['vri_key'] in dss['vri']
    if dss['revision'] is not None and dss['revision'] <= sig.signed_revision:
        notes.append('the /DSS predates the signature')
        return done('B-T')
    missing = [c.subject.human_friendly for c in need if not has_revinfo(c, dss)]
    if missing:
        notes.append(f'no OCSP response or CRL in the /DSS for: {missing}')
        return done('B-T')
    if not facts['chain_to_root']:
        notes.append('a chain does not reach a self-signed root through the CMS and /DSS')
        return done('B-T')
    # B-LTA: a document timestamp over a revision whose /DSS already held all of the above.
    for ts in doc_timestamps:
        if ts.signed_revision <= sig.signed_revision:
            continue
        then = dss_content(r, ts.signed_revision)
        if then is not None and all(has_revinfo(c, then) for c in need):
            chain, _ = tsa_chain(ts.signed_data, dss['certs'])
            facts['doc_ts_field'] = ts.field_name
            facts['doc_ts_tsa_revinfo'] = bool(chain) and all(has_revinfo(c, dss) for c in chain)
            return done('B-LTA')
    return done('B-LT')


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        r = PdfFileReader(open(sys.argv[1], 'rb'), strict=False)
        dss = dss_content(r)
        doc_ts = [s for s in r.embedded_signatures if s.sig_object_type == '/DocTimeStamp']
        sigs = [judge(r, s, dss, doc_ts) for s in r.embedded_regular_signatures]
    except Exception as e:  # noqa: BLE001 -- any failure to read is the verdict
        print(json.dumps({'error': f'{type(e).__name__}: {e}'}))
        return 2
    print(json.dumps({
        'signatures': sigs,
        'doc_timestamps': [{'field': t.field_name, 'revision': t.signed_revision,
                            'subfilter': str(t.sig_object.get('/SubFilter'))} for t in doc_ts],
        'dss': None if dss is None else {
            'revision': dss['revision'], 'ocsps': len(dss['ocsps']), 'crls': len(dss['crls']),
            'certs': len(dss['certs']), 'vri': dss['vri']},
    }, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
