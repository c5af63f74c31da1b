import java.sql.*;
import java.util.Properties;

/** pgjdbc against querygate's front door: a call with a bound parameter, then the metadata
 *  a GUI client (DBeaver, DataGrip, Metabase) reads on connect. Prints one fact a line. */
public class QuerygateJdbc {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("sslmode", "disable");
        props.setProperty("ApplicationName", "jdbc-test");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product " + meta.getDatabaseProductName() + " "
                    + meta.getDatabaseProductVersion());
            try (PreparedStatement st = conn.prepareStatement(
                    "SELECT * FROM get_customer_by_id(?)")) {
                for (int round = 0; round < 6; round++) {  // past prepareThreshold: server-prepared
                    st.setInt(1, 42);
                    try (ResultSet rs = st.executeQuery()) {
                        ResultSetMetaData md = rs.getMetaData();
                        while (rs.next()) {
                            if (round == 5) {
                                for (int i = 1; i <= md.getColumnCount(); i++) {
                                    System.out.println("col " + md.getColumnName(i) + " "
                                            + md.getColumnTypeName(i) + " = " + rs.getString(i));
                                }
                            }
                        }
                    }
                }
            }
            try (Statement st = conn.createStatement()) {
                st.execute("SET querygate.reason = 'TICKET-9'");
                try (ResultSet rs = st.executeQuery("SHOW querygate.reason")) {
                    rs.next();
                    System.out.println("reason " + rs.getString(1));
                }
            }
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM customers");
                System.out.println("adhoc allowed");
            } catch (SQLException e) {
                System.out.println("adhoc refused " + e.getSQLState());
            }
            print("table", meta.getTables(null, null, "%", new String[] {"TABLE", "VIEW"}),
                  "TABLE_SCHEM", "TABLE_NAME", "REMARKS");
            print("column", meta.getColumns(null, null, "customers", "%"),
                  "TABLE_NAME", "COLUMN_NAME", "TYPE_NAME", "REMARKS");
            print("procedure", meta.getProcedures(null, null, "%"), "PROCEDURE_NAME", "REMARKS");
            print("function", meta.getFunctions(null, null, "get_%"), "FUNCTION_NAME");
            print("schema", meta.getSchemas(), "TABLE_SCHEM");
        }
    }

    static void print(String what, ResultSet rs, String... columns) throws SQLException {
        int count = 0;
        try (rs) {
            while (rs.next()) {
                StringBuilder line = new StringBuilder(what);
                for (String c : columns) {
                    line.append(' ').append(rs.getString(c));
                }
                System.out.println(line);
                count++;
            }
        }
        System.out.println(what + "s " + count);
    }
}
