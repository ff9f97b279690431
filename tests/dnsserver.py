"""A real authoritative DNS server for the tests, on 127.0.0.1 (UDP and TCP), built on dnslib.

It serves the records it is given in zone-file syntax, answers NXDOMAIN for names it does not
know and NODATA for known names without the asked type, serves the root zone's SOA and NS (so
resolvers that ask for them are satisfied), and can be told to answer SERVFAIL for some names
or to never answer others (a timeout). Used by the policy tests through the `dns` fixture.

We use a Python server rather than hickory-server: the zones live beside the assertions that
rely on them, and CI compiles one crate fewer.
"""

import threading

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver, DNSServer

ROOT = """
. 86400 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
. 86400 IN NS ns.test.
"""


class ZoneResolver(BaseResolver):
    def __init__(self):
        self.lock = threading.Lock()
        self.rrs = []
        self.servfail = set()
        self.drop = set()
        self.queries = []
        self.load(ROOT)

    def load(self, text):
        with self.lock:
            self.rrs.extend(RR.fromZone(text))

    def clear(self):
        with self.lock:
            self.rrs = list(RR.fromZone(ROOT))
            self.servfail.clear()
            self.drop.clear()

    def resolve(self, request, handler):
        q = request.q
        name = DNSLabel(str(q.qname).lower())
        with self.lock:
            self.queries.append((str(name), QTYPE[q.qtype]))
            if str(name) in self.drop:
                return None
            reply = request.reply()
            if str(name) in self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            known = False
            for rr in self.rrs:
                if rr.rname == name:
                    known = True
                    if rr.rtype == q.qtype or q.qtype == QTYPE.ANY or rr.rtype == QTYPE.CNAME:
                        reply.add_answer(rr)
            if not reply.rr:
                if not known and not any(str(rr.rname).endswith("." + str(name)) for rr in self.rrs):
                    reply.header.rcode = RCODE.NXDOMAIN
                soa = [rr for rr in self.rrs if rr.rtype == QTYPE.SOA]
                if soa:
                    reply.add_auth(soa[0])
            reply.header.aa = 1
            return reply


class TestDns:
    """Starts on a free port; `zone(text)` adds records, `servfail(name)`, `drop(name)`."""

    def __init__(self, port, address="127.0.0.1"):
        self.port = port
        self.resolver = ZoneResolver()
        self.udp = DNSServer(self.resolver, address=address, port=port, tcp=False, logger=_Quiet())
        self.tcp = DNSServer(self.resolver, address=address, port=port, tcp=True, logger=_Quiet())
        self.udp.start_thread()
        self.tcp.start_thread()

    def zone(self, text):
        self.resolver.load(text)

    def servfail(self, name):
        self.resolver.servfail.add(name.rstrip(".").lower() + ".")

    def drop(self, name):
        self.resolver.drop.add(name.rstrip(".").lower() + ".")

    def queried(self, name):
        n = name.rstrip(".").lower() + "."
        with self.resolver.lock:
            return [t for (q, t) in self.resolver.queries if q == n]

    def stop(self):
        self.udp.stop()
        self.tcp.stop()


class _Quiet:
    def __getattr__(self, name):
        return lambda *a, **k: None
