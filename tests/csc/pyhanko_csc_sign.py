"""Sign a PDF with pyHanko's own CSC client (CSCSigner) against signetd.

Usage: pyhanko_csc_sign.py URL CERT KEY CA CREDENTIAL IN OUT LEVEL
  URL         the API listener, https://127.0.0.1:PORT
  CERT, KEY   the client certificate and key (mutual TLS is the CSC authentication)
  CA          the root that signetd's TLS certificate chains to
  CREDENTIAL  the credential (signing key label)
  LEVEL       b-b, or b-t (pyHanko's own time-stamp client, on signetd's /v1/tsa)

The authorization is a small CSCAuthorizationManager: one credentials/authorize call per
signHash, bound to the hashes (the service says SCAL 2). Prints what the service announced.
"""

import asyncio
import ssl
import sys

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.timestamps.aiohttp_client import AIOHttpTimeStamper


class HashBoundAuthorization(CSCAuthorizationManager):
    """A fresh SAD for exactly the hashes about to be signed."""

    def __init__(self, session, session_info, credential_info):
        super().__init__(session_info, credential_info)
        self.session = session

    async def authorize_signature(self, hash_b64s):
        request = self.format_csc_auth_request(hash_b64s=hash_b64s)
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        async with self.session.post(url, json=request, raise_for_status=True) as resp:
            return self.parse_csc_auth_response(await resp.json())


async def main(url, cert, key, ca, credential, src, dst, level):
    tls = ssl.create_default_context(cafile=ca)
    tls.load_cert_chain(cert, key)
    connector = aiohttp.TCPConnector(ssl=tls)
    async with aiohttp.ClientSession(connector=connector) as session:
        info = CSCServiceSessionInfo(service_url=url, credential_id=credential, api_ver="v1")
        credential_info = await fetch_certs_in_csc_credential(session, info)
        print(
            "credential:",
            credential_info.signing_cert.subject.human_friendly,
            "| mechanisms:",
            ",".join(sorted(credential_info.supported_mechanisms)),
            "| multisign:",
            credential_info.max_batch_size,
            "| hash pinning:",
            credential_info.hash_pinning_required,
        )
        auth = HashBoundAuthorization(session, info, credential_info)
        signer = CSCSigner(session, auth)
        timestamper = None
        if level == "b-t":
            timestamper = AIOHttpTimeStamper(url + "/v1/tsa", session=session, https=True)
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1",
            subfilter=fields.SigSeedSubFilter.PADES,
            md_algorithm="sha256",
        )
        pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=timestamper)
        with open(src, "rb") as inf, open(dst, "wb") as outf:
            writer = IncrementalPdfFileWriter(inf)
            await pdf_signer.async_sign_pdf(writer, output=outf)


if __name__ == "__main__":
    if len(sys.argv) != 9:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
