"""The certificate the Python test servers (smtp_server.py, https_server.py) present."""
import os
import ssl
import subprocess


def make_tls_context(folder):
    """A self-signed certificate for the DNS name "localhost" only, made with openssl(1).

    Written to folder/cert.pem (the CA a client should trust) and folder/key.pem.
    """
    cert = os.path.join(folder, "cert.pem")
    key = os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
