// Express 4 is installed under an alias for the compatibility runs; its API surface used here
// matches Express 5's types.
declare module 'express4' {
  import express from 'express';
  export default express;
}
