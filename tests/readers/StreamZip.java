import java.io.BufferedInputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Reads a zip front to back as a streaming reader does, with java.util.zip.ZipInputStream
 * (which checks each member's CRC and sizes), and prints one line a member:
 * name, bytes read, method (0 stored, 8 deflated) and the modified time in epoch seconds.
 * Anything the reader refuses ends it with the reader's own message and exit status 1.
 */
public final class StreamZip {
    public static void main(String[] args) throws Exception {
        try (InputStream file = new BufferedInputStream(new FileInputStream(args[0]));
                ZipInputStream zip = new ZipInputStream(file)) {
            byte[] buffer = new byte[1 << 16];
            ZipEntry entry;
            while ((entry = zip.getNextEntry()) != null) {
                long size = 0;
                int read;
                while ((read = zip.read(buffer)) > 0) {
                    size += read;
                }
                System.out.println(entry.getName() + "\t" + size + "\t" + entry.getMethod()
                        + "\t" + entry.getLastModifiedTime().toMillis() / 1000);
            }
        } catch (Exception refused) {
            System.out.println("refused: " + refused);
            System.exit(1);
        }
    }
}
