// One HTTPS request with a client certificate from a PKCS#12 keystore, as a Java service would
// make it: HttpsURLConnection, the JDK's own TLS, a trust store built from a PEM CA file.
// Usage: java MtlsGet.java URL CA_PEM [P12 P12_PASSWORD]
// Prints one line "STATUS <code>", then the body (the error stream for 4xx/5xx). A TLS failure
// prints "TLS_ERROR <exception>" and exits 3.
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManagerFactory;

public class MtlsGet {
    public static void main(String[] args) throws Exception {
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (InputStream in = new FileInputStream(args[1])) {
            int i = 0;
            for (Certificate ca : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                trust.setCertificateEntry("ca" + i++, ca);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        KeyManagerFactory kmf = null;
        if (args.length > 3) {
            char[] password = args[3].toCharArray();
            KeyStore keys = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(args[2])) {
                keys.load(in, password);
            }
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, password);
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        HttpsURLConnection connection = (HttpsURLConnection) new URL(args[0]).openConnection();
        connection.setSSLSocketFactory(context.getSocketFactory());
        connection.setConnectTimeout(10000);
        connection.setReadTimeout(10000);
        int status;
        try {
            status = connection.getResponseCode();
        } catch (SSLException e) {
            System.out.println("TLS_ERROR " + e);
            System.exit(3);
            return;
        }
        InputStream body = status >= 400 ? connection.getErrorStream() : connection.getInputStream();
        System.out.println("STATUS " + status);
        if (body != null) {
            System.out.println(new String(body.readAllBytes(), StandardCharsets.UTF_8));
        }
    }
}
