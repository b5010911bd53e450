/** The dashboard is exported as static files and served by the service itself (one port). */
const config = {
  output: 'export',
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  typescript: { tsconfigPath: 'tsconfig.json' },
  // Imports say `.js` (the service's TypeScript is Node ESM, and tests import these files
  // from there); here they mean the `.ts`/`.tsx` source.
  webpack(config) {
    config.resolve.extensionAlias = { '.js': ['.ts', '.tsx', '.js'] };
    return config;
  },
};
export default config;
