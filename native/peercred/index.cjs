'use strict';
// The compiled addon (node-gyp puts it under build/Release at install time).
module.exports = require('./build/Release/peercred.node');
