# Writes rsa-2048.json, the RSA test vectors of crates/packman-tuf/tests/crypto.rs: a fresh
# 2048-bit key's public PEM and a signature over MESSAGE under each RSA scheme packman
# accepts (PSS salt length = digest length, as securesystemslib signs). Run with any Python
# that has the `cryptography` package: python rsa_vectors.py > rsa-2048.json
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MESSAGE = "packman rsa test vector"
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
out = {
    "about": "RSA test vectors for crates/packman-tuf/tests/crypto.rs, written by rsa_vectors.py",
    "message": MESSAGE,
    "pem": key.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode(),
}
for name, h in [("sha256", hashes.SHA256()), ("sha384", hashes.SHA384()), ("sha512", hashes.SHA512())]:
    pss = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    out["rsassa-pss-" + name] = key.sign(MESSAGE.encode(), pss, h).hex()
    out["rsa-pkcs1v15-" + name] = key.sign(MESSAGE.encode(), padding.PKCS1v15(), h).hex()
print(json.dumps(out, indent=1))
