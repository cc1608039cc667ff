// A minimal CommonJS bundler for JsSIP's browser build.
//
// The jssip npm package ships only its CommonJS sources (lib/), not the
// dist/jssip.min.js browser bundle, so the runner builds one in memory:
// starting at jssip/lib/JsSIP.js it follows every literal require('...'),
// resolves it the way Node does (relative files, .js/.json, directories'
// index.js, packages' "browser" then "main" field) and wraps each module
// in a function. The result is one script that sets window.JsSIP.
// No bundler dependency (esbuild, webpack) is needed.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const here = path.dirname(new URL(import.meta.url).pathname);

// Node built-ins that debug's node build would want; the browser build of
// debug (picked through its "browser" field) does not require them.
const builtins = new Set(['util', 'tty', 'os', 'fs', 'path', 'supports-color']);

function isFile(p) {
	try {
		return fs.statSync(p).isFile();
	} catch {
		return false;
	}
}

function resolveFile(p) {
	for (const c of [p, `${p}.js`, `${p}.json`, path.join(p, 'index.js')]) {
		if (isFile(c)) {
			return c;
		}
	}
	return null;
}

function packageDir(name, fromDir) {
	let dir = fromDir;
	for (;;) {
		const cand = path.join(dir, 'node_modules', name);
		if (isFile(path.join(cand, 'package.json'))) {
			return cand;
		}
		const up = path.dirname(dir);
		if (up === dir) {
			return null;
		}
		dir = up;
	}
}

function resolve(spec, fromFile) {
	if (spec.startsWith('./') || spec.startsWith('../')) {
		return resolveFile(path.resolve(path.dirname(fromFile), spec));
	}
	if (builtins.has(spec)) {
		return null;
	}
	const dir = packageDir(spec, path.dirname(fromFile));
	if (!dir) {
		return null;
	}
	const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
	const entry = typeof pkg.browser === 'string' ? pkg.browser : pkg.main || 'index.js';
	return resolveFile(path.resolve(dir, entry));
}

/**
 * Returns the source of a browser script that defines window.JsSIP from the
 * installed jssip package (found from this directory's node_modules).
 */
export function buildJsSIPBundle() {
	const require = createRequire(path.join(here, 'package.json'));
	const entry = require.resolve('jssip/lib/JsSIP.js');
	const ids = new Map(); // absolute path -> id
	const modules = []; // {id, file, deps: {spec: id|null}}
	const queue = [entry];
	ids.set(entry, 0);
	while (queue.length > 0) {
		const file = queue.shift();
		const src = fs.readFileSync(file, 'utf8');
		const deps = {};
		for (const m of src.matchAll(/\brequire\(\s*(['"])([^'"]+)\1\s*\)/g)) {
			const spec = m[2];
			if (spec in deps) {
				continue;
			}
			const target = resolve(spec, file);
			if (target === null) {
				deps[spec] = null;
				continue;
			}
			if (!ids.has(target)) {
				ids.set(target, ids.size);
				queue.push(target);
			}
			deps[spec] = ids.get(target);
		}
		modules.push({ id: ids.get(file), file, src, deps });
	}
	modules.sort((a, b) => a.id - b.id);
	const parts = [];
	parts.push('(function () {');
	parts.push('var defs = [], depmaps = [], cache = [];');
	for (const m of modules) {
		const rel = path.relative(here, m.file);
		const body = m.file.endsWith('.json') ? `module.exports = ${m.src};` : m.src;
		parts.push(`// ${rel}`);
		parts.push(`depmaps[${m.id}] = ${JSON.stringify(m.deps)};`);
		parts.push(`defs[${m.id}] = function (module, exports, require) {\n${body}\n};`);
	}
	parts.push(`
function load(id) {
	if (cache[id]) return cache[id].exports;
	var module = { exports: {} };
	cache[id] = module;
	var map = depmaps[id];
	defs[id].call(module.exports, module, module.exports, function (spec) {
		var dep = map[spec];
		if (dep === null || dep === undefined) throw new Error("bundle: cannot require " + spec);
		return load(dep);
	});
	return module.exports;
}
window.JsSIP = load(0);
})();`);
	return parts.join('\n');
}

// `node bundle.mjs > jssip.js` writes the bundle out (for a manual look).
if (process.argv[1] && path.resolve(process.argv[1]) === path.join(here, 'bundle.mjs')) {
	process.stdout.write(buildJsSIPBundle());
}
