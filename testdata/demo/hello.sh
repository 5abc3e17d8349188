#!/bin/sh
cat /etc/built
echo "running as $(uname -m)"
