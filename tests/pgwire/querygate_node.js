// node-postgres (pg) against querygate's front door; prints one JSON object.
// usage: node querygate_node.js PORT USER TOKEN
const { Client } = require("pg");

async function main() {
  const [port, user, password] = process.argv.slice(2);
  const client = new Client({ host: "127.0.0.1", port: Number(port), user, password,
                              database: "querygate", application_name: "node-test" });
  const notices = [];
  client.on("notice", (n) => notices.push(n.message));
  await client.connect();
  const out = { notices };
  const byParam = await client.query("SELECT * FROM get_customer_by_id($1)", [42]);
  out.fields = byParam.fields.map((f) => [f.name, f.dataTypeID]);
  out.row = byParam.rows[0];
  const named = await client.query({ name: "by-id", text: "SELECT * FROM get_customer_by_id($1)",
                                     values: [43] });
  const again = await client.query({ name: "by-id", text: "SELECT * FROM get_customer_by_id($1)",
                                     values: [42] });
  out.prepared = [named.rows[0].id, again.rows[0].id];
  out.functions = (await client.query("SELECT * FROM querygate.functions")).rows.map((r) => r.name);
  try {
    await client.query("SELECT * FROM customers");
    out.adhoc = "allowed";
  } catch (e) {
    out.adhoc = e.code;
  }
  try {
    await client.query("SELECT * FROM get_customer_by_id($1)", ["not a number"]);
  } catch (e) {
    out.bad = e.code;
  }
  await client.end();
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e.code || "", e.message); process.exit(1); });
