// Runs one benchmark suite in its own process for `s3-sse bench`, so that no suite inherits
// another's heap, worker threads or open files. Progress and the result go to the parent
// over the IPC channel.
const [name, quick, openssl] = process.argv.slice(2)
const suite = await import(new URL(`./${name}.mjs`, import.meta.url).href)
try {
  const result = await suite.run({
    quick: quick === '1',
    openssl: openssl ? JSON.parse(openssl) : undefined,
    onProgress: (done, total, label) => process.send({ progress: [done, total, label] }),
  })
  process.send({ result, summary: suite.summarize(result) }, () => process.exit(0))
} catch (err) {
  process.send({ error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1))
}
