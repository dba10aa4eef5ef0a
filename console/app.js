// The s3-sse web console: a small app over the JSON API under /-/console/api/ (docs/CONSOLE.md).
// Pages are built with createElement and textContent only; the server's Content-Security-Policy
// requires Trusted Types, so an HTML string could not reach the DOM even by mistake.

const $ = (id) => document.getElementById(id)

class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** Thrown when a call found the session gone: the sign-in view is already showing. */
class SessionEnded extends Error {}

/** Plainer words than the server's for the errors people meet in the console. */
const PLAIN = {
  AccessDenied: 'You do not have access to this bucket. Buckets belong to the user who created them.',
  NoSuchBucket: 'This bucket does not exist (any more).',
  BucketAlreadyExists: 'That name is already taken by another user\'s bucket. Bucket names are shared by everyone on this server: pick another.',
  BucketAlreadyOwnedByYou: 'You already have a bucket with this name.',
  InvalidBucketName: 'That is not a valid bucket name: use 3–63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit.',
  TooManyFailedLogins: null, // the server's message says how long to wait
  InternalError: 'The server failed to do this. Its log has the details.',
  ServiceUnavailable: 'The server (or its KMS) is not available right now. Try again shortly.',
}

function plain(err) {
  if (err instanceof ApiError) return PLAIN[err.code] ?? err.message
  return 'The server could not be reached. Check that it is running, then try again.'
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' }
  // Every change carries this header: a form on another site cannot send it.
  if (method !== 'GET') headers['X-S3SSE-Console'] = '1'
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const res = await fetch('api/' + path, init)
  let data = null
  try {
    data = await res.json()
  } catch {
    data = null
  }
  if (!res.ok) {
    const e = new ApiError(res.status, data?.error?.code ?? 'HttpError', data?.error?.message ?? `The server answered ${res.status}.`)
    if (res.status === 401 && e.code === 'NoSession') {
      signedOut('Your session has ended. Sign in again.')
      throw new SessionEnded()
    }
    throw e
  }
  return data
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue
    if (k === 'text') node.textContent = v
    else if (k === 'className') node.className = v
    else node.setAttribute(k, v)
  }
  for (const c of children) node.append(c)
  return node
}

function showError(id, message) {
  const p = $(id)
  p.textContent = message ?? ''
  p.hidden = !message
}

function setStatus(message) {
  $('status').textContent = message ?? ''
}

function formatSize(n) {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = -1
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}

function formatDate(iso) {
  return new Date(iso).toLocaleString()
}

/** "SSE-KMS" / "AES256" / "none": how an object is encrypted. */
function objectEncryptionLabel(enc) {
  if (!enc) return 'none'
  return enc.algorithm === 'aws:kms' ? 'SSE-KMS' : 'AES256'
}

/** How a bucket's default encryption reads in lists. */
function bucketEncryptionLabel(enc) {
  if (!enc) return 'Disabled'
  return enc.algorithm === 'aws:kms' ? 'SSE-KMS' : 'SSE-S3 (AES256)'
}

function badge(text, on, title) {
  return el('span', { className: `enc ${on ? 'enc-on' : 'enc-off'}`, text, title })
}

// ---------------------------------------------------------------- session

/** {user: {name, accessKey, root}, mode, region, keyListing?: false} once signed in. */
let me = null

const VIEWS = ['view-login', 'view-buckets', 'view-bucket', 'view-keys', 'view-jobs']

function showView(id, navKey) {
  for (const v of VIEWS) $(v).hidden = v !== id
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === navKey) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
}

function signedOut(message) {
  stopPolling()
  me = null
  $('nav').hidden = true
  $('who').hidden = true
  if ($('enc-dialog').open) $('enc-dialog').close()
  setStatus('')
  showView('view-login')
  showError('login-error', message)
  $('login-secret').value = ''
  $('login-access').focus()
}

function signedIn(who) {
  me = who
  $('who-name').textContent = who.user.root ? `${who.user.name} (administrator)` : who.user.name
  $('who-mode').textContent = `${who.mode} mode`
  $('who-mode').title = who.mode === 'oss'
    ? 'oss mode: bucket default encryption is SSE-KMS with each bucket\'s service key'
    : 'aws mode: SSE-S3, SSE-KMS with chosen keys, and request headers as in Amazon S3'
  $('nav').hidden = false
  $('who').hidden = false
  // A KMS without an admin surface has no key listing: no keys page.
  document.querySelector('[data-nav="keys"]').hidden = who.keyListing === false
  // Every job, of every bucket, is root's to see.
  document.querySelector('[data-nav="jobs"]').hidden = !who.user.root
  showError('login-error', null)
}

async function login(event) {
  event.preventDefault()
  const accessKey = $('login-access').value.trim()
  const secretKey = $('login-secret').value
  if (!accessKey || !secretKey) {
    showError('login-error', 'Enter both the access key and the secret key.')
    return
  }
  const button = event.submitter ?? $('login-form').querySelector('button')
  button.disabled = true
  try {
    const who = await api('POST', 'session', { accessKey, secretKey })
    $('login-secret').value = ''
    signedIn(who)
    await route(true)
  } catch (err) {
    showError('login-error', err instanceof ApiError && err.code === 'LoginFailed'
      ? 'The access key or the secret key is wrong.'
      : plain(err))
    $('login-secret').select()
  } finally {
    button.disabled = false
  }
}

async function logout() {
  try {
    await api('DELETE', 'session')
  } catch {
    // Signed out locally either way; the server drops idle sessions on its own.
  }
  signedOut('You have signed out.')
}

// ---------------------------------------------------------------- buckets

async function showBuckets(focus) {
  showView('view-buckets', 'buckets')
  if (focus) $('buckets-title').focus()
  setStatus('Loading buckets…')
  const { buckets } = await api('GET', 'buckets')
  const rows = buckets.map((b) =>
    el('tr', {},
      el('td', {}, el('a', { href: `#/buckets/${encodeURIComponent(b.name)}/objects`, text: b.name })),
      el('td', { text: b.owner }),
      el('td', { text: formatDate(b.createdAt) }),
      el('td', {}, badge(bucketEncryptionLabel(b.encryption), b.encryption !== null)),
    ))
  $('bucket-rows').replaceChildren(...rows)
  $('buckets-empty').hidden = buckets.length > 0
  setStatus('')
}

async function createBucket(event) {
  event.preventDefault()
  const name = $('create-name').value.trim()
  showError('create-error', null)
  if (!name) {
    showError('create-error', 'Enter a name for the new bucket.')
    return
  }
  try {
    await api('POST', 'buckets', { name })
    $('create-name').value = ''
    await showBuckets(false)
    setStatus(`Bucket ${name} created.`)
  } catch (err) {
    if (err instanceof SessionEnded) return
    showError('create-error', plain(err))
    $('create-name').focus()
  }
}

// ---------------------------------------------------------------- one bucket

const bucketState = { name: '', tab: 'objects', encryption: null, next: undefined }

async function showBucket(name, tab, focus) {
  const changed = bucketState.name !== name || $('view-bucket').hidden
  bucketState.name = name
  showView('view-bucket', 'buckets')
  $('bucket-title').textContent = name
  selectTab(tab)
  if (focus) $(`tab-${tab}`).focus()
  if (tab === 'objects') await loadObjects(true)
  else {
    await loadEncryption()
    await loadExisting()
  }
  if (changed) setStatus('')
}

function selectTab(tab) {
  bucketState.tab = tab
  for (const t of ['objects', 'settings']) {
    const button = $(`tab-${t}`)
    const on = t === tab
    button.setAttribute('aria-selected', String(on))
    button.tabIndex = on ? 0 : -1
    $(`panel-${t}`).hidden = !on
  }
}

function goTab(tab) {
  location.hash = `#/buckets/${encodeURIComponent(bucketState.name)}/${tab}`
}

/** Arrow keys, Home and End move between tabs (WAI-ARIA Authoring Practices, "Tabs"). */
function tabKeys(event) {
  const order = ['objects', 'settings']
  let i = order.indexOf(bucketState.tab)
  if (event.key === 'ArrowRight') i = (i + 1) % order.length
  else if (event.key === 'ArrowLeft') i = (i + order.length - 1) % order.length
  else if (event.key === 'Home') i = 0
  else if (event.key === 'End') i = order.length - 1
  else return
  event.preventDefault()
  $(`tab-${order[i]}`).focus()
  goTab(order[i])
}

async function loadObjects(reset) {
  if (reset) {
    bucketState.next = undefined
    $('object-rows').replaceChildren()
  }
  setStatus('Loading objects…')
  const q = new URLSearchParams({ limit: '200' })
  if (bucketState.next !== undefined) q.set('after', bucketState.next)
  const page = await api('GET', `buckets/${encodeURIComponent(bucketState.name)}/objects?${q}`)
  const rows = page.objects.map((o) =>
    el('tr', {},
      el('td', { className: 'key mono', text: o.key }),
      el('td', { className: 'num', text: formatSize(o.size), title: `${o.size} bytes` }),
      el('td', { text: formatDate(o.lastModified) }),
      el('td', {}, badge(objectEncryptionLabel(o.encryption), o.encryption !== null, o.encryption ? `KMS key: ${o.encryption.keyName ?? o.encryption.keyId}` : 'Stored as sent')),
      el('td', { className: 'tags', text: o.tags.length ? o.tags.map((t) => `${t.key}=${t.value}`).join(', ') : '—' }),
    ))
  $('object-rows').append(...rows)
  bucketState.next = page.truncated ? page.next : undefined
  $('objects-more').hidden = !page.truncated
  $('objects-empty').hidden = $('object-rows').children.length > 0
  setStatus('')
}

function keyName(key, fallback) {
  if (!key) return fallback
  return key.alias ? `${key.alias} (${key.keyId})` : key.keyId
}

function renderEncryption(enc) {
  bucketState.encryption = enc
  $('enc-state').textContent = bucketEncryptionLabel(enc)
  const kms = enc?.algorithm === 'aws:kms'
  for (const id of ['enc-key-label', 'enc-key']) $(id).hidden = !kms
  for (const id of ['enc-bk-label', 'enc-bk']) $(id).hidden = !enc
  if (kms) {
    const service = me.mode === 'oss'
    const pending = service ? `this bucket's service key, ${enc.keyId} (created on the first encrypted write)` : `${enc.keyId} (created on first use)`
    $('enc-key').textContent = service && enc.key ? `this bucket's service key, ${keyName(enc.key)}` : keyName(enc.key, pending)
  }
  if (enc) $('enc-bk').textContent = enc.bucketKeyEnabled ? 'On' : 'Off'
}

async function loadEncryption() {
  setStatus('Loading settings…')
  const { encryption } = await api('GET', `buckets/${encodeURIComponent(bucketState.name)}/encryption`)
  renderEncryption(encryption)
  await loadPolicy()
  setStatus('')
}

// ---------------------------------------------------------------- the bucket policy

function renderPolicy(policy) {
  $('policy-state').textContent = policy === null ? 'No policy: only the owner (and root) can use this bucket.' : 'This bucket has a policy.'
  $('policy-text').value = policy === null ? '' : prettyJson(policy)
  $('policy-delete').disabled = policy === null
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}

async function loadPolicy() {
  const { policy } = await api('GET', `buckets/${encodeURIComponent(bucketState.name)}/policy`)
  renderPolicy(policy)
  showError('policy-error', null)
}

async function savePolicy() {
  showError('policy-error', null)
  const text = $('policy-text').value.trim()
  if (!text) {
    showError('policy-error', 'Enter a policy document, or use Delete policy to remove it.')
    return
  }
  try {
    const { policy } = await api('PUT', `buckets/${encodeURIComponent(bucketState.name)}/policy`, { policy: text })
    renderPolicy(policy)
    setStatus('The bucket policy is saved. It applies to every request from now on.')
  } catch (err) {
    if (err instanceof SessionEnded) return
    showError('policy-error', plain(err))
  }
}

async function deletePolicy() {
  showError('policy-error', null)
  try {
    await api('DELETE', `buckets/${encodeURIComponent(bucketState.name)}/policy`)
    renderPolicy(null)
    setStatus('The bucket policy is deleted.')
  } catch (err) {
    if (err instanceof SessionEnded) return
    showError('policy-error', plain(err))
  }
}

// ---------------------------------------------------------------- the Modify dialog

function modeValue() {
  return document.querySelector('input[name="enc-mode"]:checked')?.value ?? 'none'
}

function syncDialog() {
  const mode = modeValue()
  $('enc-key-select').disabled = mode !== 'aws:kms'
  $('enc-bucket-key').disabled = mode === 'none'
}

async function fillKeySelect(enc) {
  const select = $('enc-key-select')
  const { keys } = await api('GET', 'kms/keys')
  const options = [el('option', { value: '', text: 'aws/s3 (default key)' })]
  for (const k of keys) {
    if (k.managed || !k.enabled) continue
    options.push(el('option', { value: k.keyId, text: k.alias ? `${k.alias} (${k.keyId})` : k.keyId }))
  }
  let selected = ''
  if (enc?.kmsMasterKeyId !== undefined) {
    selected = enc.key?.keyId ?? enc.kmsMasterKeyId
    if (!options.some((o) => o.value === selected)) options.push(el('option', { value: selected, text: `${enc.kmsMasterKeyId} (as configured)` }))
  }
  select.replaceChildren(...options)
  select.value = selected
}

async function openDialog() {
  const enc = bucketState.encryption
  const dialog = $('enc-dialog')
  showError('enc-error', null)
  $('enc-dialog-bucket').textContent = bucketState.name
  for (const node of dialog.querySelectorAll('[data-mode]')) node.hidden = node.dataset.mode !== me.mode
  const value = enc ? enc.algorithm : 'none'
  for (const r of dialog.querySelectorAll('input[name="enc-mode"]')) r.checked = r.value === value
  $('enc-bucket-key').checked = enc?.bucketKeyEnabled ?? false
  if (me.mode === 'aws') {
    try {
      await fillKeySelect(enc)
    } catch (err) {
      if (err instanceof SessionEnded) return
      $('enc-key-select').replaceChildren(el('option', { value: '', text: 'aws/s3 (default key)' }))
      showError('enc-error', `The key list could not be loaded: ${plain(err)}`)
    }
  }
  syncDialog()
  dialog.showModal()
  dialog.querySelector('input[name="enc-mode"]:checked')?.focus()
}

async function saveDialog(event) {
  event.preventDefault()
  const mode = modeValue()
  const path = `buckets/${encodeURIComponent(bucketState.name)}/encryption`
  const ok = $('enc-ok')
  ok.disabled = true
  showError('enc-error', null)
  try {
    let result
    if (mode === 'none') {
      result = await api('DELETE', path)
    } else {
      const body = { algorithm: mode }
      if (me.mode === 'aws') {
        body.bucketKeyEnabled = $('enc-bucket-key').checked
        const key = $('enc-key-select').value
        if (mode === 'aws:kms' && key !== '') body.kmsMasterKeyId = key
      }
      result = await api('PUT', path, body)
    }
    $('enc-dialog').close()
    renderEncryption(result.encryption)
    await loadExisting()
    setStatus(`Default encryption is now ${bucketEncryptionLabel(result.encryption)}. It applies to objects written from now on.`)
    $('enc-modify').focus()
  } catch (err) {
    if (err instanceof SessionEnded) return
    showError('enc-error', plain(err))
  } finally {
    ok.disabled = false
  }
}

function cancelDialog() {
  $('enc-dialog').close()
  $('enc-modify').focus()
}

// ---------------------------------------------------------------- existing objects and jobs

/** The one timer that refreshes a job's progress; a new view stops it. */
let poll = null

function stopPolling() {
  clearTimeout(poll)
  poll = null
}

const count = (n) => n.toLocaleString('en-US')
const ACTIVE_STATES = ['queued', 'running', 'paused', 'failed']

function formatDuration(seconds) {
  const s = Math.round(seconds)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** "120 of 450 objects · 1.2 MiB of 3.0 MiB · 45 objects/s · about 8 s left · 0 errors" */
function jobText(job) {
  const p = job.progress
  const parts = [
    p.objects.total === null ? `${count(p.objects.done)} objects` : `${count(p.objects.done)} of ${count(p.objects.total)} objects`,
    p.bytes.total === null ? formatSize(p.bytes.done) : `${formatSize(p.bytes.done)} of ${formatSize(p.bytes.total)}`,
  ]
  if (p.objectsPerSecond !== null && job.state !== 'completed') parts.push(`${p.objectsPerSecond < 10 ? p.objectsPerSecond.toFixed(1) : count(Math.round(p.objectsPerSecond))} objects/s`)
  if (p.etaSeconds !== null && p.etaSeconds > 0 && job.state === 'running') parts.push(`about ${formatDuration(p.etaSeconds)} left`)
  parts.push(`${count(job.done.errors)} ${job.done.errors === 1 ? 'error' : 'errors'}`)
  if (job.kind === 'scrub' || job.done.damaged > 0) parts.push(`${count(job.done.damaged)} damaged`)
  return parts.join(' · ')
}

function progressBar(job) {
  const bar = el('progress', { max: String(Math.max(1, job.progress.objects.total ?? 1)), value: String(job.progress.objects.done) })
  bar.setAttribute('aria-label', `${job.kind} ${job.id}: ${job.progress.fraction === null ? 'not counted yet' : `${Math.floor(job.progress.fraction * 100)}%`}`)
  return bar
}

const JOB_LABEL = {
  queued: 'Waiting to start encrypting existing objects',
  running: 'Encrypting existing objects',
  paused: 'Encrypting existing objects: paused',
  failed: 'Encrypting existing objects stopped',
  completed: 'Existing objects encrypted',
  cancelled: 'Encrypting existing objects cancelled',
}

function showJobProgress(job) {
  $('job-box').hidden = false
  const bar = $('job-progress')
  bar.max = Math.max(1, job.progress.objects.total ?? 1)
  bar.value = job.progress.objects.done
  $('job-progress-label').textContent = JOB_LABEL[job.state] + (job.state === 'failed' && job.error ? `: ${job.error}` : '')
  $('job-progress-text').textContent = jobText(job)
}

function renderExisting(stats, job) {
  const enc = bucketState.encryption
  const n = stats.plaintextObjects
  let summary
  if (stats.objects === 0) summary = 'This bucket holds no objects.'
  else if (n === 0) summary = `All ${count(stats.objects)} objects in this bucket are stored encrypted.`
  else if (enc) summary = `${count(n)} of ${count(stats.objects)} objects (${formatSize(stats.plaintextBytes)}) are stored unencrypted: they were written before the default encryption was set.`
  else summary = `${count(n)} of ${count(stats.objects)} objects (${formatSize(stats.plaintextBytes)}) are stored unencrypted. Set a default encryption to encrypt them.`
  $('existing-summary').textContent = summary
  const active = job && ACTIVE_STATES.includes(job.state)
  $('encrypt-existing').hidden = !(enc && n > 0 && !active)
  if (job) showJobProgress(job)
  else $('job-box').hidden = true
}

/** The bucket's plaintext count and its encrypt job in progress, if any (whose progress is then followed). */
async function loadExisting() {
  const name = bucketState.name
  const path = `buckets/${encodeURIComponent(name)}`
  const [{ stats }, { jobs }] = await Promise.all([api('GET', `${path}/stats`), api('GET', `${path}/jobs`)])
  if (bucketState.name !== name || bucketState.tab !== 'settings') return
  const job = jobs.find((j) => j.kind === 'encrypt' && ACTIVE_STATES.includes(j.state))
  renderExisting(stats, job)
  if (job) followJob(job.id)
}

function onSettings(name) {
  return !$('view-bucket').hidden && bucketState.name === name && bucketState.tab === 'settings'
}

/** Refreshes the progress bar every second until the job stops. */
function followJob(id) {
  stopPolling()
  const name = bucketState.name
  const tick = async () => {
    poll = null
    if (!onSettings(name)) return
    try {
      const { job } = await api('GET', `jobs/${encodeURIComponent(id)}`)
      if (!onSettings(name)) return
      showJobProgress(job)
      if (ACTIVE_STATES.includes(job.state) && job.state !== 'paused' && job.state !== 'failed') {
        poll = setTimeout(tick, 1000)
        return
      }
      const { stats } = await api('GET', `buckets/${encodeURIComponent(name)}/stats`)
      if (!onSettings(name)) return
      renderExisting(stats, job)
      if (job.state === 'completed') setStatus(`Done: ${count(job.done.changed)} objects encrypted, ${count(job.done.skipped)} skipped, ${count(job.done.errors)} errors.`)
    } catch (err) {
      if (err instanceof SessionEnded) return
      showError('existing-error', plain(err))
    }
  }
  poll = setTimeout(tick, 1000)
}

async function encryptExisting() {
  const button = $('encrypt-existing')
  button.disabled = true
  showError('existing-error', null)
  try {
    const { job } = await api('POST', `buckets/${encodeURIComponent(bucketState.name)}/jobs`, { kind: 'encrypt' })
    button.hidden = true
    showJobProgress(job)
    setStatus('Encrypting existing objects…')
    followJob(job.id)
  } catch (err) {
    if (err instanceof SessionEnded) return
    showError('existing-error', plain(err))
  } finally {
    button.disabled = false
  }
}

function jobActions(job) {
  const actions = []
  if (job.state === 'queued' || job.state === 'running') actions.push('pause')
  if (job.state === 'paused' || job.state === 'failed') actions.push('resume')
  if (ACTIVE_STATES.includes(job.state)) actions.push('cancel')
  return actions.map((a) => {
    const b = el('button', { type: 'button', text: a[0].toUpperCase() + a.slice(1), 'aria-label': `${a} job ${job.id}` })
    b.addEventListener('click', async () => {
      b.disabled = true
      try {
        await api('POST', `jobs/${encodeURIComponent(job.id)}/${a}`)
        await loadJobs()
      } catch (err) {
        if (!(err instanceof SessionEnded)) setStatus(plain(err))
      }
    })
    return b
  })
}

async function loadJobs() {
  stopPolling()
  const { jobs } = await api('GET', 'jobs')
  if ($('view-jobs').hidden) return
  const rows = jobs.map((j) =>
    el('tr', { 'data-job': j.id },
      el('td', { className: 'mono', text: j.id }),
      el('td', { text: j.kind }),
      el('td', {}, el('a', { href: `#/buckets/${encodeURIComponent(j.bucket)}/settings`, text: j.bucket + (j.prefix ? `/${j.prefix}` : '') })),
      el('td', { text: j.state, title: j.error ?? '' }),
      el('td', {}, progressBar(j), el('div', { className: 'hint', text: jobText(j) })),
      el('td', { className: 'num', text: count(j.done.errors) }),
      el('td', { className: 'num', text: count(j.done.damaged) }),
      el('td', { text: j.startedAt ? formatDate(j.startedAt) : '—' }),
      el('td', { className: 'actions' }, ...jobActions(j)),
    ))
  $('job-rows').replaceChildren(...rows)
  $('jobs-empty').hidden = jobs.length > 0
  if (jobs.some((j) => j.state === 'queued' || j.state === 'running')) poll = setTimeout(() => loadJobs().catch((e) => e instanceof SessionEnded || setStatus(plain(e))), 2000)
}

async function showJobs(focus) {
  showView('view-jobs', 'jobs')
  if (focus) $('jobs-title').focus()
  setStatus('Loading jobs…')
  await loadJobs()
  setStatus('')
}

// ---------------------------------------------------------------- KMS keys

async function showKeys(focus) {
  showView('view-keys', 'keys')
  if (focus) $('keys-title').focus()
  setStatus('Loading keys…')
  const { keys } = await api('GET', 'kms/keys')
  const rows = keys.map((k) =>
    el('tr', {},
      el('td', { className: 'mono', text: k.keyId }),
      el('td', {}, k.alias ?? '—', ...(k.managed ? [' ', badge('managed', false, 'Created and used by s3-sse itself')] : [])),
      el('td', { className: 'num', text: String(k.versions), title: `New data keys use version ${k.current}` }),
      el('td', {}, badge(k.enabled ? 'Enabled' : 'Disabled', k.enabled)),
      el('td', { text: formatDate(k.createdAt) }),
    ))
  $('key-rows').replaceChildren(...rows)
  $('keys-empty').hidden = keys.length > 0
  setStatus('')
}

// ---------------------------------------------------------------- routing

/** #/buckets, #/buckets/NAME/objects, #/buckets/NAME/settings, #/keys, #/jobs */
async function route(focus = false) {
  stopPolling()
  try {
    if (!me) {
      const who = await api('GET', 'session')
      if (!who.user) return signedOut(null)
      signedIn(who)
    }
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean)
    if (parts[0] === 'keys' && me.keyListing !== false) return await showKeys(focus)
    if (parts[0] === 'jobs' && me.user.root) return await showJobs(focus)
    if (parts[0] === 'buckets' && parts[1]) {
      return await showBucket(decodeURIComponent(parts[1]), parts[2] === 'settings' ? 'settings' : 'objects', focus)
    }
    return await showBuckets(focus)
  } catch (err) {
    if (err instanceof SessionEnded) return
    setStatus(plain(err))
  }
}

function start() {
  for (const id of ['buckets-title', 'bucket-title', 'keys-title', 'jobs-title']) $(id).tabIndex = -1
  $('login-form').addEventListener('submit', login)
  $('logout').addEventListener('click', logout)
  $('create-form').addEventListener('submit', createBucket)
  $('tab-objects').addEventListener('click', () => goTab('objects'))
  $('tab-settings').addEventListener('click', () => goTab('settings'))
  document.querySelector('[role="tablist"]').addEventListener('keydown', tabKeys)
  $('policy-save').addEventListener('click', () => savePolicy())
  $('policy-delete').addEventListener('click', () => deletePolicy())
  $('objects-refresh').addEventListener('click', () => loadObjects(true).catch((e) => e instanceof SessionEnded || setStatus(plain(e))))
  $('objects-more').addEventListener('click', () => loadObjects(false).catch((e) => e instanceof SessionEnded || setStatus(plain(e))))
  $('enc-modify').addEventListener('click', () => openDialog().catch((e) => e instanceof SessionEnded || setStatus(plain(e))))
  $('enc-form').addEventListener('submit', saveDialog)
  $('enc-form').addEventListener('change', syncDialog)
  $('enc-cancel').addEventListener('click', cancelDialog)
  $('encrypt-existing').addEventListener('click', encryptExisting)
  // The skip link moves focus without touching the route in the URL.
  document.querySelector('.skip').addEventListener('click', (e) => {
    e.preventDefault()
    $('main').focus()
  })
  window.addEventListener('hashchange', () => route(true))
  route(false)
}

start()
