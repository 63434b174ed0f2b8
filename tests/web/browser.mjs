// The one browser run of CI: Debian's chromium, launched once, runs every scenario module
// given on the command line, each check in a fresh context of its own (its own cookies and
// storage, as a fresh profile), at a phone's size.
//
//   node browser.mjs SCENARIO.mjs [NAME=VALUE ...] [-- SCENARIO.mjs [NAME=VALUE ...]] ...
//
// A scenario module's default export is `async function (t)`, where
// - `t.env(NAME)` is one of the NAME=VALUE pairs given after its path (an error when missing),
//   so two scenarios may each have their own REALM_URL;
// - `t.check(name, async (page) => …)` runs one check on a fresh page and reports it;
// - `t.screenshot(page, name)` saves the page at the phone's size and at a desktop's, under
//   SHOTS (from the environment), named after the scenario;
// - `t.browser` is the browser, for a check that needs more than one page.
// Prints "ok"/"FAIL" per check and "browser: N passed, N failed"; exits non-zero on a failure.
import { mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

import { DESKTOP, PHONE } from './app.mjs';

function parseArguments(args) {
    const runs = [];
    for (const arg of args) {
        if (arg === '--') continue;
        if (arg.endsWith('.mjs') && !arg.includes('=')) {
            runs.push({ path: arg, values: new Map() });
        } else if (runs.length > 0 && arg.includes('=')) {
            const at = arg.indexOf('=');
            runs[runs.length - 1].values.set(arg.slice(0, at), arg.slice(at + 1));
        } else {
            throw new Error(`not a scenario module or NAME=VALUE: ${arg}`);
        }
    }
    return runs;
}

const runs = parseArguments(process.argv.slice(2));
if (runs.length === 0) {
    console.error('usage: node browser.mjs SCENARIO.mjs [NAME=VALUE ...] [-- SCENARIO.mjs ...]');
    process.exit(2);
}
const shots = process.env.SHOTS;
if (!shots) throw new Error('SHOTS is not set');
mkdirSync(shots, { recursive: true });

const started = Date.now();
const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 60_000,
});
let passed = 0;
let failed = 0;
for (const run of runs) {
    const scenario = basename(run.path, '.mjs');
    let shot = 0;
    const t = {
        browser,
        env(name) {
            const value = run.values.get(name);
            if (!value) throw new Error(`${scenario}: ${name} is not given`);
            return value;
        },
        async screenshot(page, name) {
            shot += 1;
            const path = join(shots, `${scenario}-${String(shot).padStart(2, '0')}-${name}.png`);
            const viewport = page.viewportSize() ?? PHONE;
            await page.screenshot({ path, fullPage: true });
            await page.setViewportSize(DESKTOP);
            await page.screenshot({ path: path.replace(/\.png$/, '-desktop.png'), fullPage: true });
            await page.setViewportSize(viewport);
            console.log(`    screenshot ${path} (and -desktop)`);
        },
        async check(name, body) {
            console.log(`--- ${scenario}: ${name}`);
            const context = await browser.newContext({
                viewport: PHONE,
                isMobile: true,
                hasTouch: true,
                deviceScaleFactor: 2,
                acceptDownloads: true,
            });
            try {
                const page = await context.newPage();
                page.setDefaultTimeout(20_000);
                await body(page);
                console.log(`ok   ${scenario}: ${name}`);
                passed += 1;
            } catch (error) {
                console.log(`FAIL ${scenario}: ${name}: ${error.stack ?? error}`);
                failed += 1;
            } finally {
                await context.close();
            }
        },
    };
    try {
        const module = await import(pathToFileURL(resolve(run.path)).href);
        await module.default(t);
    } catch (error) {
        console.log(`FAIL ${scenario}: ${error.stack ?? error}`);
        failed += 1;
    }
}
await browser.close();
console.log(`browser: ${passed} passed, ${failed} failed, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed === 0 ? 0 : 1);
