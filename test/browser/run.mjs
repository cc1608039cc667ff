#!/usr/bin/env node
// Real-browser SIP test runner: JsSIP in headless Debian Chromium registers
// over WSS, calls a target, hangs up and unregisters (--mode call, the
// default); or registers, answers the call it receives, waits for the
// caller's BYE and unregisters (--mode answer).
//
//   node run.mjs --wss wss://127.0.0.1:5443 --domain velox.test \
//       [--user alice] [--password secret] [--target sip:answer@velox.test]
//   node run.mjs --mode answer --ready-file /tmp/ready --wss ... --domain ...
//
// Every option can also come from the environment (see usage below). Exits
// 0 only when every step succeeded: connect, register, call (200 OK + ACK),
// BYE (answered 2xx), unregister; in answer mode connect, register,
// incoming (INVITE), answer (200 OK sent, ACK received), remote-bye (BYE
// received, answered 200), unregister. 1 when a step failed or the run
// timed out; 2 on a usage error. See README.md.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildJsSIPBundle } from './bundle.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const started = Date.now();

const usage = `usage: node run.mjs --wss URL --domain DOMAIN [options]

  --wss URL          WebSocket URL of the SIP server (env WSS_URL), e.g. wss://127.0.0.1:5443
  --domain D         SIP domain (env SIP_DOMAIN)
  --user U           SIP user to register (env SIP_USER; default alice)
  --password P       digest password, when the server challenges (env SIP_PASSWORD)
  --target URI       whom to call (env SIP_TARGET; default sip:answer@DOMAIN; mode call)
  --mode M           call: call --target and hang up (default); answer: wait for
                     a call (after registering), answer it, wait for the caller's
                     BYE (env RUN_MODE)
  --ready-file FILE  write FILE once registered (a caller may start then)
  --incoming-ms N    answer mode: how long to wait for the INVITE (env INCOMING_MS; default 15000)
  --chromium PATH    browser executable (env CHROMIUM_PATH; default /usr/bin/chromium)
  --hold-ms N        how long the call stays up before BYE (env HOLD_MS; default 1000; mode call)
  --timeout-ms N     bound on the whole run (env RUN_TIMEOUT_MS; default 50000)
  --media M          audio source: auto (fake capture device, else a tone), getUserMedia, tone
  --json FILE        write the result object (steps, SDPs) to FILE
  --screenshot FILE  save a PNG of the page at the end
  --trace            print every SIP message in full (default: first lines)
  --debug            print JsSIP's debug log (browser console)
  --help`;

let opts;
try {
	opts = parseArgs({
		options: {
			wss: { type: 'string', default: process.env.WSS_URL },
			domain: { type: 'string', default: process.env.SIP_DOMAIN },
			user: { type: 'string', default: process.env.SIP_USER || 'alice' },
			password: { type: 'string', default: process.env.SIP_PASSWORD || '' },
			target: { type: 'string', default: process.env.SIP_TARGET },
			mode: { type: 'string', default: process.env.RUN_MODE || 'call' },
			'ready-file': { type: 'string' },
			'incoming-ms': { type: 'string', default: process.env.INCOMING_MS || '15000' },
			chromium: { type: 'string', default: process.env.CHROMIUM_PATH || '/usr/bin/chromium' },
			'hold-ms': { type: 'string', default: process.env.HOLD_MS || '1000' },
			'timeout-ms': { type: 'string', default: process.env.RUN_TIMEOUT_MS || '50000' },
			media: { type: 'string', default: process.env.MEDIA || 'auto' },
			json: { type: 'string' },
			screenshot: { type: 'string' },
			trace: { type: 'boolean', default: false },
			debug: { type: 'boolean', default: false },
			help: { type: 'boolean', default: false },
		},
		strict: true,
	}).values;
} catch (e) {
	console.error(`${e.message}\n${usage}`);
	process.exit(2);
}
if (opts.help) {
	console.log(usage);
	process.exit(0);
}
const holdMs = Number(opts['hold-ms']);
const timeoutMs = Number(opts['timeout-ms']);
const incomingMs = Number(opts['incoming-ms']);
const problems = [];
if (!opts.wss || !/^wss?:\/\//.test(opts.wss)) problems.push('--wss wss://host:port is required');
if (!opts.domain) problems.push('--domain is required');
if (!['auto', 'getUserMedia', 'tone'].includes(opts.media)) problems.push('--media: auto, getUserMedia or tone');
if (!(holdMs >= 0) || !(timeoutMs > 0) || !(incomingMs > 0)) problems.push('--hold-ms, --timeout-ms and --incoming-ms take numbers of milliseconds');
if (!['call', 'answer'].includes(opts.mode)) problems.push('--mode: call or answer');
if (!fs.existsSync(opts.chromium)) problems.push(`no browser at ${opts.chromium} (apt-get install chromium, or --chromium PATH)`);
if (problems.length) {
	console.error(`${problems.join('\n')}\n${usage}`);
	process.exit(2);
}
opts.target ||= `sip:answer@${opts.domain}`;

// --- logging ---------------------------------------------------------------

function stamp() {
	return `[${((Date.now() - started) / 1000).toFixed(3).padStart(7)}s]`;
}
function log(line) {
	console.log(`${stamp()} ${line}`);
}
function indent(text, prefix) {
	return text.replace(/\r?\n$/, '').split(/\r?\n/).map((l) => prefix + l).join('\n');
}

// --- the run ---------------------------------------------------------------

let browser = null;
let server = null;
let finished = false;

async function cleanup() {
	const closing = [];
	if (browser) closing.push(browser.close().catch(() => {}));
	if (server) closing.push(new Promise((r) => server.close(r)));
	browser = null;
	server = null;
	await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 5000))]);
}

function finish(result) {
	if (finished) return;
	finished = true;
	const secs = ((Date.now() - started) / 1000).toFixed(1);
	if (opts.json) {
		fs.writeFileSync(opts.json, JSON.stringify({ ...result, seconds: Number(secs) }, null, 2));
	}
	const required = opts.mode === 'answer'
		? ['register', 'incoming', 'answer', 'remote-bye', 'unregister']
		: ['register', 'call', 'bye', 'unregister'];
	const okSteps = new Set((result.steps || []).filter((s) => s.ok).map((s) => s.name));
	const pass = result.ok && required.every((s) => okSteps.has(s));
	console.log('');
	console.log('steps:');
	for (const s of result.steps || []) {
		console.log(`  ${s.ok ? 'ok  ' : 'FAIL'} ${s.name.padEnd(10)} ${String(s.ms).padStart(6)} ms  ${s.detail.split('\n')[0]}`);
	}
	if (pass && opts.mode === 'answer') {
		console.log(`RESULT: PASS - registered, incoming call answered and confirmed, caller's BYE answered, unregistered (${secs}s)`);
	} else if (pass) {
		console.log(`RESULT: PASS - registered, call confirmed, BYE answered, unregistered (${secs}s)`);
	} else {
		console.log(`RESULT: FAIL at step "${result.failedStep || '?'}": ${(result.error || 'unknown error').split('\n')[0]} (${secs}s)`);
	}
	return pass ? 0 : 1;
}

const deadline = setTimeout(async () => {
	log(`run timed out after ${timeoutMs} ms`);
	const code = finish({ ok: false, failedStep: currentStep || 'setup', error: `run timed out after ${timeoutMs} ms`, steps: stepsSeen });
	await cleanup();
	process.exit(code);
}, timeoutMs);

let currentStep = '';
const stepsSeen = [];

async function main() {
	log(`browser test: ${opts.user}@${opts.domain} via ${opts.wss}, ${opts.mode === 'answer' ? 'answering a call' : `calling ${opts.target}`}`);

	// Static files: the page, the flow script and the JsSIP bundle.
	const files = {
		'/': ['text/html', fs.readFileSync(path.join(here, 'page', 'index.html'))],
		'/sipflow.js': ['text/javascript', fs.readFileSync(path.join(here, 'page', 'sipflow.js'))],
		'/jssip.js': ['text/javascript', buildJsSIPBundle()],
	};
	server = http.createServer((req, res) => {
		if (req.url === '/favicon.ico') {
			res.writeHead(204).end();
			return;
		}
		const f = files[req.url.split('?')[0]];
		if (!f) {
			res.writeHead(404).end();
			return;
		}
		res.writeHead(200, { 'Content-Type': f[0], 'Cache-Control': 'no-store' }).end(f[1]);
	});
	await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
	// localhost is a secure context: getUserMedia and WebRTC are allowed.
	const pageUrl = `http://localhost:${server.address().port}/`;

	const { chromium } = await import('playwright-core');
	log(`launching ${opts.chromium} (headless)`);
	browser = await chromium.launch({
		executablePath: opts.chromium,
		headless: true,
		timeout: 20000,
		args: [
			'--ignore-certificate-errors', // the test's WSS certificate is self-signed
			'--use-fake-ui-for-media-stream',
			'--use-fake-device-for-media-stream',
			'--autoplay-policy=no-user-gesture-required',
			'--no-sandbox',
			'--disable-dev-shm-usage',
			'--disable-gpu',
		],
	});
	log(`browser ${browser.version()}`);
	const context = await browser.newContext({ ignoreHTTPSErrors: true });
	await context.grantPermissions(['microphone'], { origin: pageUrl.replace(/\/$/, '') }).catch(() => {});
	const page = await context.newPage();

	page.on('pageerror', (e) => log(`page error: ${e.message}`));
	page.on('console', (m) => {
		if (opts.debug || m.type() === 'error') log(`console.${m.type()}: ${m.text()}`);
	});
	await page.exposeFunction('reportStep', (s) => {
		if (s.state === 'start') {
			currentStep = s.name;
			log(`step ${s.name}: start`);
		} else if (s.state === 'info') {
			log(`step ${s.name}: ${s.detail}`);
		} else {
			stepsSeen.push({ name: s.name, ok: s.state === 'ok', ms: s.ms, detail: s.detail });
			log(`step ${s.name}: ${s.state === 'ok' ? 'OK' : 'FAILED'} (${s.ms} ms) ${s.detail}`);
			if (s.name === 'register' && s.state === 'ok' && opts['ready-file']) {
				// The browser is reachable now: the test starts its caller.
				fs.writeFileSync(opts['ready-file'], `registered ${new Date().toISOString()}\n`);
				log(`ready: wrote ${opts['ready-file']}`);
			}
		}
	});
	await page.exposeFunction('reportSip', (m) => {
		const arrow = m.dir === 'out' ? '-->' : '<--';
		log(`  ${arrow} ${m.firstLine}${m.cseq ? `  [CSeq ${m.cseq}]` : ''}`);
		if (opts.trace) console.log(indent(m.text, '        | '));
	});

	await page.goto(pageUrl, { waitUntil: 'load', timeout: 15000 });
	const version = await page.evaluate(() => (window.JsSIP ? window.JsSIP.version : null));
	if (!version || (await page.evaluate(() => typeof window.sipFlow)) !== 'function') {
		throw new Error('the page did not load JsSIP and sipflow.js');
	}
	log(`page ${pageUrl} loaded, JsSIP ${version}`);

	const result = await page.evaluate((o) => window.sipFlow(o), {
		wss: opts.wss,
		domain: opts.domain,
		user: opts.user,
		password: opts.password,
		target: opts.target,
		holdMs,
		mode: opts.mode,
		timeouts: { incoming: incomingMs },
		media: opts.media,
		debug: opts.debug,
	});
	if (!result.ok && opts.mode === 'answer' && result.offerSdp) {
		log(`offer SDP received:\n${indent(result.offerSdp, '        | ')}`);
	} else if (!result.ok && result.answerSdp) {
		log(`answer SDP received:\n${indent(result.answerSdp, '        | ')}`);
	}
	if (opts.screenshot) {
		await page.screenshot({ path: opts.screenshot }).catch((e) => log(`screenshot: ${e.message}`));
	}
	return result;
}

let code;
try {
	const result = await main();
	code = finish(result);
} catch (e) {
	log(`error: ${e.stack || e.message}`);
	code = finish({ ok: false, failedStep: currentStep || 'setup', error: e.message, steps: stepsSeen });
}
clearTimeout(deadline);
await cleanup();
process.exit(code);
