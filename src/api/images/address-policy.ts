/**
 * Which IP addresses an image fetch may connect to. The point is SSRF: a URL from a request body
 * must not reach the server's own loopback services, the LAN, or a cloud metadata endpoint
 * (169.254.169.254, fd00:ec2::254), however the name resolves or redirects. So every address is
 * put in a class, and only `public` is fetchable by default. IPv6 forms that carry an IPv4 address
 * (mapped, NAT64, 6to4) are judged by that IPv4 address, or `::ffff:127.0.0.1` would slip through.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'shared'
  | 'multicast'
  | 'unspecified'
  | 'reserved';

type Range = readonly [prefix: Uint8Array, bits: number, cls: AddressClass];

const V4_RANGES: readonly Range[] = (
  [
    ['0.0.0.0', 8, 'unspecified'],
    ['10.0.0.0', 8, 'private'],
    ['100.64.0.0', 10, 'shared'], // CGNAT: another customer's side of the carrier's NAT
    ['127.0.0.0', 8, 'loopback'],
    ['169.254.0.0', 16, 'link-local'],
    ['172.16.0.0', 12, 'private'],
    ['192.0.0.0', 24, 'reserved'],
    ['192.0.2.0', 24, 'reserved'],
    ['192.88.99.0', 24, 'reserved'],
    ['192.168.0.0', 16, 'private'],
    ['198.18.0.0', 15, 'reserved'],
    ['198.51.100.0', 24, 'reserved'],
    ['203.0.113.0', 24, 'reserved'],
    ['224.0.0.0', 4, 'multicast'],
    ['240.0.0.0', 4, 'reserved'], // includes 255.255.255.255
  ] as const
).map(([a, bits, cls]) => [v4Bytes(a)!, bits, cls] as const);

const V6_RANGES: readonly Range[] = (
  [
    ['fd00:ec2::254', 128, 'metadata'], // AWS's IPv6 metadata service, inside the unique-local range
    ['64:ff9b:1::', 48, 'private'], // local-use NAT64 (RFC 8215)
    ['100::', 64, 'reserved'], // discard-only
    ['2001::', 23, 'reserved'], // IETF protocol assignments, Teredo among them
    ['2001:db8::', 32, 'reserved'],
    ['fc00::', 7, 'private'], // unique local
    ['fe80::', 10, 'link-local'],
    ['fec0::', 10, 'reserved'], // deprecated site-local
    ['ff00::', 8, 'multicast'],
  ] as const
).map(([a, bits, cls]) => [v6Bytes(a)!, bits, cls] as const);

const MAPPED = v6Bytes('::ffff:0:0')!;
const NAT64 = v6Bytes('64:ff9b::')!;
const SIX_TO_FOUR = v6Bytes('2002::')!;
const GLOBAL_UNICAST = v6Bytes('2000::')!;

/** The class of an IPv4 or IPv6 address in text form; anything unparseable is `reserved`. */
export function classifyAddress(ip: string): AddressClass {
  const v4 = v4Bytes(ip);
  if (v4) return classifyV4(v4);
  const v6 = v6Bytes(ip);
  return v6 ? classifyV6(v6) : 'reserved';
}

/**
 * Only public addresses, unless the operator opted into private ones for a host named exactly on
 * the allow-list. Link-local stays refused even then: it is where metadata services live, and no
 * image server needs it.
 */
export function isFetchableAddress(cls: AddressClass, privateAllowed: boolean): boolean {
  return cls === 'public' || (privateAllowed && (cls === 'loopback' || cls === 'private'));
}

function classifyV4(b: Uint8Array): AddressClass {
  return V4_RANGES.find(([prefix, bits]) => matches(b, prefix, bits))?.[2] ?? 'public';
}

function classifyV6(b: Uint8Array): AddressClass {
  if (b.every((x) => x === 0)) return 'unspecified';
  if (b.subarray(0, 15).every((x) => x === 0) && b[15] === 1) return 'loopback';
  if (matches(b, MAPPED, 96) || matches(b, NAT64, 96)) return classifyV4(b.subarray(12));
  if (matches(b, SIX_TO_FOUR, 16)) return classifyV4(b.subarray(2, 6));
  // The deprecated IPv4-compatible form (::a.b.c.d) and the rest of ::/8 are not routable.
  if (b[0] === 0) return 'reserved';
  const hit = V6_RANGES.find(([prefix, bits]) => matches(b, prefix, bits));
  if (hit) return hit[2];
  // Outside 2000::/3 nothing is allocated for unicast yet.
  return matches(b, GLOBAL_UNICAST, 3) ? 'public' : 'reserved';
}

function matches(b: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  if (b.length !== prefix.length) return false;
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (b[i] !== prefix[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (b[whole]! & mask) === (prefix[whole]! & mask);
}

function v4Bytes(ip: string): Uint8Array | null {
  if (!isIPv4(ip)) return null;
  return Uint8Array.from(ip.split('.').map(Number));
}

function v6Bytes(text: string): Uint8Array | null {
  // Resolvers report link-local addresses with a zone (fe80::1%eth0); the zone does not change the class.
  let ip = text.replace(/%.*$/, '');
  if (!isIPv6(ip)) return null;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    ip = `${ip.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const words = (s: string) => (s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const left = words(head);
  const right = tail === undefined ? [] : words(tail);
  const all = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}
