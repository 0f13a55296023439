package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// Encrypted PKCS#8 (RFC 5208 EncryptedPrivateKeyInfo) with PBES2 (RFC 8018 section 6.2):
// PBKDF2 with HMAC-SHA1/224/256/384/512 and AES-128/192/256-CBC or DES-EDE3-CBC. This is what
// `openssl pkcs8 -topk8` and `openssl genpkey -aes256` write. The older PBES1 schemes and
// PKCS#12 PBE are refused by name.

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidPKCS5      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}
	oidPKCS12PBE  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

type encryptedPrivateKeyInfo struct {
	Algo          pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

func isEncryptedPKCS8(der []byte) bool {
	var info encryptedPrivateKeyInfo
	rest, err := asn1.Unmarshal(der, &info)
	if err != nil || len(rest) != 0 || len(info.EncryptedData) == 0 {
		return false
	}
	oid := info.Algo.Algorithm
	return oid.Equal(oidPBES2) || hasPrefix(oid, oidPKCS5) || hasPrefix(oid, oidPKCS12PBE)
}

func hasPrefix(oid, prefix asn1.ObjectIdentifier) bool {
	return len(oid) > len(prefix) && oid[:len(prefix)].Equal(prefix)
}

// DecryptPKCS8 decrypts a DER EncryptedPrivateKeyInfo protected with PBES2 and returns the
// plain PKCS#8 PrivateKeyInfo. A wrong passphrase gives an error wrapping ErrBadPassphrase.
func DecryptPKCS8(der, passphrase []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("pki: not an encrypted PKCS#8 key: %w", err)
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("pki: encryption scheme %v is not supported (only PBES2; the PBES1 and PKCS#12 schemes use broken ciphers)", info.Algo.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("pki: bad PBES2 parameters: %w", err)
	}
	if params.KeyDerivationFunc.Algorithm.Equal(oidScrypt) {
		return nil, errors.New("pki: scrypt key derivation is not supported (only PBKDF2)")
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("pki: key derivation %v is not supported (only PBKDF2)", params.KeyDerivationFunc.Algorithm)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("pki: bad PBKDF2 parameters: %w", err)
	}
	prf, err := prfHash(kdf.PRF.Algorithm)
	if err != nil {
		return nil, err
	}
	newCipher, keyLen, err := cbcCipher(params.EncryptionScheme.Algorithm)
	if err != nil {
		return nil, err
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, fmt.Errorf("pki: PBKDF2 key length %d does not fit the cipher (%d)", kdf.KeyLength, keyLen)
	}
	if kdf.IterationCount <= 0 || kdf.IterationCount > 10_000_000 {
		return nil, fmt.Errorf("pki: implausible PBKDF2 iteration count %d", kdf.IterationCount)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("pki: bad cipher IV: %w", err)
	}
	key, err := pbkdf2.Key(prf, string(passphrase), kdf.Salt, kdf.IterationCount, keyLen)
	if err != nil {
		return nil, fmt.Errorf("pki: PBKDF2: %w", err)
	}
	block, err := newCipher(key)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(info.EncryptedData)%bs != 0 || len(info.EncryptedData) == 0 {
		return nil, errors.New("pki: encrypted key data has a bad length or IV")
	}
	plain := make([]byte, len(info.EncryptedData))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.EncryptedData)
	// PKCS#7 padding; a wrong passphrase almost always breaks it.
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > bs {
		return nil, ErrBadPassphrase
	}
	for _, c := range plain[len(plain)-pad:] {
		if int(c) != pad {
			return nil, ErrBadPassphrase
		}
	}
	plain = plain[:len(plain)-pad]
	if n, err := derLength(plain); err != nil || n != len(plain) {
		return nil, ErrBadPassphrase
	}
	return plain, nil
}

// EncryptPKCS8 encrypts a PKCS#8 PrivateKeyInfo with PBES2 (PBKDF2-HMAC-SHA256, 600000
// iterations, AES-256-CBC) and returns the DER EncryptedPrivateKeyInfo (PEM type
// "ENCRYPTED PRIVATE KEY").
func EncryptPKCS8(pkcs8, passphrase []byte) ([]byte, error) {
	return EncryptPKCS8Iterations(pkcs8, passphrase, 0)
}

// EncryptPKCS8Iterations is EncryptPKCS8 with a chosen PBKDF2 iteration count; zero means
// 600000. Fewer iterations make the key quicker to open and to guess: use them only for
// throwaway keys (tests).
func EncryptPKCS8Iterations(pkcs8, passphrase []byte, iter int) ([]byte, error) {
	if iter <= 0 {
		iter = 600_000
	}
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, string(passphrase), salt, iter, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(pkcs8)%aes.BlockSize
	plain := append(append([]byte(nil), pkcs8...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	enc := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(enc, plain)
	ivDER, _ := asn1.Marshal(iv)
	null := asn1.RawValue{Tag: asn1.TagNull}
	kdfDER, err := asn1.Marshal(pbkdf2Params{Salt: salt, IterationCount: iter, PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACSHA256, Parameters: null}})
	if err != nil {
		return nil, err
	}
	paramsDER, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfDER}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(encryptedPrivateKeyInfo{
		Algo:          pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: paramsDER}},
		EncryptedData: enc,
	})
}

func prfHash(oid asn1.ObjectIdentifier) (func() hash.Hash, error) {
	switch {
	case len(oid) == 0 || oid.Equal(oidHMACSHA1):
		return sha1.New, nil // the RFC 8018 default
	case oid.Equal(oidHMACSHA224):
		return sha256.New224, nil
	case oid.Equal(oidHMACSHA256):
		return sha256.New, nil
	case oid.Equal(oidHMACSHA384):
		return sha512.New384, nil
	case oid.Equal(oidHMACSHA512):
		return sha512.New, nil
	}
	return nil, fmt.Errorf("pki: PBKDF2 pseudo-random function %v is not supported", oid)
}

func cbcCipher(oid asn1.ObjectIdentifier) (func([]byte) (cipher.Block, error), int, error) {
	switch {
	case oid.Equal(oidAES128CBC):
		return aes.NewCipher, 16, nil
	case oid.Equal(oidAES192CBC):
		return aes.NewCipher, 24, nil
	case oid.Equal(oidAES256CBC):
		return aes.NewCipher, 32, nil
	case oid.Equal(oidDESEDE3CBC):
		return des.NewTripleDESCipher, 24, nil
	}
	return nil, 0, fmt.Errorf("pki: cipher %v is not supported (AES-CBC and DES-EDE3-CBC are)", oid)
}
