// The floor for the ingest benchmark: a Bun server that reads the body and answers 200, nothing else.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(request) {
    await request.arrayBuffer()
    return Response.json({ status: "received" })
  }
})
console.log(JSON.stringify({ msg: "listening", port: server.port }))
