package pki

// EncryptPKCS8Iterations is EncryptPKCS8 with a chosen PBKDF2 iteration count: tests use a low
// one, the default takes seconds under the race detector.
func EncryptPKCS8Iterations(pkcs8, passphrase []byte, iter int) ([]byte, error) {
	return encryptPKCS8(pkcs8, passphrase, iter)
}
