/**
 * strongSwan proposal keywords (as in ipsec.conf `ike=` and `esp=`), classified, so a typo such
 * as "aes256-sha265" is caught before charon silently drops the proposal. Pure: no I/O.
 */

export type AlgorithmRole = 'encryption' | 'aead' | 'integrity' | 'prf' | 'dh' | 'esn';

function withSizes(prefixes: string[], sizes: (number | string)[], suffix = ''): string[] {
  return prefixes.flatMap((prefix) => sizes.map((size) => `${prefix}${size}${suffix}`));
}

const aeadKeywords = [
  ...withSizes(['aes128', 'aes192', 'aes256'], [8, 12, 16, 64, 96, 128].map((n) => `gcm${n}`)),
  ...withSizes(['aes128', 'aes192', 'aes256'], [8, 12, 16, 64, 96, 128].map((n) => `ccm${n}`)),
  ...withSizes(['camellia128', 'camellia192', 'camellia256'], ['ccm8', 'ccm12', 'ccm16']),
  'aes128gcm',
  'aes192gcm',
  'aes256gcm',
  'chacha20poly1305',
];

const encryptionKeywords = [
  'aes',
  'aes128',
  'aes192',
  'aes256',
  'aes128ctr',
  'aes192ctr',
  'aes256ctr',
  '3des',
  'des',
  'cast128',
  'blowfish',
  'blowfish128',
  'blowfish192',
  'blowfish256',
  'camellia',
  'camellia128',
  'camellia192',
  'camellia256',
  'camellia128ctr',
  'camellia192ctr',
  'camellia256ctr',
  'serpent128',
  'serpent192',
  'serpent256',
  'twofish128',
  'twofish192',
  'twofish256',
  'null',
];

const integrityKeywords = [
  'md5',
  'md5_128',
  'sha',
  'sha1',
  'sha1_160',
  'sha256',
  'sha2_256',
  'sha256_96',
  'sha2_256_96',
  'sha384',
  'sha2_384',
  'sha512',
  'sha2_512',
  'aesxcbc',
  'aescmac',
  'aes128gmac',
  'aes192gmac',
  'aes256gmac',
];

const prfKeywords = [
  'prfmd5',
  'prfsha1',
  'prfsha256',
  'prfsha384',
  'prfsha512',
  'prfaesxcbc',
  'prfaescmac',
];

const dhKeywords = [
  'modp768',
  'modp1024',
  'modp1536',
  'modp2048',
  'modp3072',
  'modp4096',
  'modp6144',
  'modp8192',
  'modp1024s160',
  'modp2048s224',
  'modp2048s256',
  'ecp192',
  'ecp224',
  'ecp256',
  'ecp384',
  'ecp521',
  'ecp224bp',
  'ecp256bp',
  'ecp384bp',
  'ecp512bp',
  'curve25519',
  'x25519',
  'curve448',
  'x448',
];

const roles = new Map<string, AlgorithmRole>([
  ...aeadKeywords.map((k) => [k, 'aead'] as const),
  ...encryptionKeywords.map((k) => [k, 'encryption'] as const),
  ...integrityKeywords.map((k) => [k, 'integrity'] as const),
  ...prfKeywords.map((k) => [k, 'prf'] as const),
  ...dhKeywords.map((k) => [k, 'dh'] as const),
  ['esn', 'esn'],
  ['noesn', 'esn'],
]);

/** Keywords that still work but are broken or too weak for new deployments. */
export const WEAK_KEYWORDS: ReadonlySet<string> = new Set([
  'modp768',
  'modp1024',
  'modp1024s160',
  'md5',
  'md5_128',
  'prfmd5',
  'sha',
  'sha1',
  'sha1_160',
  'prfsha1',
  'des',
  '3des',
  'null',
]);

/** The role of one proposal keyword, or undefined when strongSwan would not know it. */
export function algorithmRole(keyword: string): AlgorithmRole | undefined {
  return roles.get(keyword);
}

/** What is wrong with one proposal, as plain sentences; empty when it is usable. */
export function proposalProblems(proposal: string, kind: 'ike' | 'esp'): string[] {
  const keywords = proposal.replace(/!$/, '').split('-');
  const problems: string[] = [];
  const found = new Set<AlgorithmRole>();
  for (const keyword of keywords) {
    const role = algorithmRole(keyword);
    if (role === undefined) problems.push(`unknown algorithm keyword "${keyword}"`);
    else found.add(role);
  }
  if (problems.length > 0) return problems;
  if (!found.has('encryption') && !found.has('aead')) {
    problems.push('names no encryption algorithm');
  }
  if (found.has('encryption') && !found.has('integrity') && !(kind === 'esp' && keywords.includes('null'))) {
    problems.push('a non-AEAD cipher needs an integrity algorithm');
  }
  if (kind === 'ike' && !found.has('dh')) problems.push('an IKE proposal needs a DH group');
  return problems;
}
