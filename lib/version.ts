/** The package version, for HELLO frames and --version. Kept in step with package.json by a spec. */
export const VERSION = '0.1.0'
