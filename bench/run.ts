// Placeholder until the benchmark lands: keeps `npm run bench` honest about what it does not do yet.
console.error('npm run bench: not implemented yet')
process.exitCode = 1
