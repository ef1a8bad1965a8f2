// The naive client from the tutorial this project started from (shared/seed), with
// the host and port taken from the command line. It never reads a reply, ends lines
// with a bare LF (PrintWriter.println on Linux), sends "SUBJECT:" as if it were a
// command, and closes without waiting: the built-in default must still store its mail.
import java.io.PrintWriter;
import java.net.Socket;

public class SMTPClient {
    public static void main(String[] args) {
        try {
            Socket socket = new Socket(args[0], Integer.parseInt(args[1]));
            PrintWriter writer = new PrintWriter(socket.getOutputStream(), true);
            writer.println("MAIL FROM: <sender@example.com>");
            writer.println("RCPT TO: <recipient@example.com>");
            writer.println("SUBJECT: Hello");
            writer.println("DATA");
            writer.println("From: sender@example.com");
            writer.println("To: recipient@example.com");
            writer.println("Subject: Hello");
            writer.println("Content-Type: text/plain");
            writer.println();
            writer.println("This is a test email.");
            writer.println(".");
            writer.println("QUIT");
            writer.close();
            socket.close();
        } catch (Exception e) {
            e.printStackTrace();
        }
    }
}
