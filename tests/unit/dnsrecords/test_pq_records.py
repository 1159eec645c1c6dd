"""Post-quantum ECH configs (1 KiB+ public keys) through DNS records (issue 6)."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdtypes.svcbbase
import pytest

from ech import hpke
from ech.config import ECHConfigList
from ech.dns.publish import https_record_line, warnings_for
from ech.dns.records import endpoint_from_rdata
from ech.keys import generate_ech_key

PQ_KEMS = [
    hpke.KEM.ML_KEM_768,
    hpke.KEM.ML_KEM_1024,
    hpke.KEM.MLKEM768_X25519,
    hpke.KEM.MLKEM768_P256,
    hpke.KEM.MLKEM1024_P384,
]


@pytest.mark.requirement("ECH-18")
@pytest.mark.parametrize("kem", PQ_KEMS, ids=lambda k: hpke.KEM(k).name)
def test_pq_config_round_trips_through_a_zone_line(kem: int) -> None:
    """ECH-18: the ech SvcParam carries the whole list, however large."""
    key = generate_ech_key("public.example", kem_id=kem)
    configs = ECHConfigList((key.config,))
    assert len(configs.encode()) > 1024
    line = https_record_line("secret.example", configs, port=8443)
    owner, _ttl, rdclass, rdtype, rest = line.split(None, 4)
    assert owner == "_8443._https.secret.example."
    rdata = dns.rdata.from_text(rdclass, rdtype, rest)
    wire = rdata.to_wire()
    assert wire is not None
    again = dns.rdata.from_wire(rdclass, rdtype, wire, 0, len(wire))
    assert isinstance(again, dns.rdtypes.svcbbase.SVCBBase)
    assert again.target == dns.name.root
    endpoint = endpoint_from_rdata(again, owner, 8443)
    assert endpoint.ech == configs
    assert endpoint.port == 8443
    assert endpoint.target == "_8443._https.secret.example"


def test_list_without_x25519_is_warned_about() -> None:
    """interop.md lesson 3: BoringSSL clients ignore non-X25519 configs."""
    pq_only = ECHConfigList(
        (generate_ech_key("public.example", kem_id=hpke.KEM.ML_KEM_768).config,)
    )
    assert any("X25519" in w for w in warnings_for(pq_only))
    mixed = ECHConfigList(
        (
            generate_ech_key("public.example", kem_id=hpke.KEM.ML_KEM_768).config,
            generate_ech_key("public.example").config,
        )
    )
    assert not any("X25519" in w for w in warnings_for(mixed))
