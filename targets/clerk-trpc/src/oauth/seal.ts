/** Provider tokens at rest: AES-256-GCM, `v1.<iv>.<tag>.<ciphertext>` in base64url. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export class Sealer {
  private readonly key: Buffer;

  constructor(keyBase64: string | null) {
    this.key = keyBase64 ? Buffer.from(keyBase64, 'base64') : randomBytes(32);
    if (this.key.length !== 32) throw new Error('TOKEN_SEALING_KEY must be 32 bytes in base64');
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const text = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), text].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  open(sealed: string): string {
    const [version, iv, tag, text] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || text === undefined) throw new Error('not a sealed token');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(text, 'base64url')), decipher.final()]).toString('utf8');
  }
}
