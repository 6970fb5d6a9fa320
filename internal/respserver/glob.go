package respserver

// globMatch reports whether s matches the Redis glob pattern: '*' any run
// of bytes, '?' any one byte, '[abc]', '[^abc]' and '[a-z]' classes, and
// '\' quoting the next byte. Like Redis, an unclosed '[' class runs to the
// end of the pattern. It works on bytes, not runes, as Redis does.
func globMatch(pattern, s []byte) bool {
	// Iterative matching with one backtrack point for the last '*'.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if ok, next := matchClass(pattern, p, s[i]); ok {
					p = next
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					c = pattern[p+1]
					if c == s[i] {
						p += 2
						i++
						continue
					}
					break
				}
				fallthrough
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the class that starts at pattern[p] ('[')
// and returns whether it matched and the index after the class.
func matchClass(pattern []byte, p int, b byte) (bool, int) {
	p++
	not := p < len(pattern) && pattern[p] == '^'
	if not {
		p++
	}
	match := false
	for p < len(pattern) && pattern[p] != ']' {
		switch {
		case pattern[p] == '\\' && p+1 < len(pattern):
			p++
			if pattern[p] == b {
				match = true
			}
			p++
		case p+2 < len(pattern) && pattern[p+1] == '-' && pattern[p+2] != ']':
			lo, hi := pattern[p], pattern[p+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= b && b <= hi {
				match = true
			}
			p += 3
		default:
			if pattern[p] == b {
				match = true
			}
			p++
		}
	}
	if p < len(pattern) {
		p++ // the closing ']'
	}
	return match != not, p
}

// globPrefix returns the literal prefix of a glob pattern: the bytes every
// match starts with, up to the first special character. allMatch reports
// whether the rest of the pattern is only '*', so that every key with the
// prefix matches and no filtering is needed.
func globPrefix(pattern []byte) (prefix []byte, allMatch bool) {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*':
			rest := pattern[i:]
			all := true
			for _, c := range rest {
				if c != '*' {
					all = false
					break
				}
			}
			return prefix, all
		case '?', '[':
			return prefix, false
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
		}
		prefix = append(prefix, pattern[i])
	}
	return prefix, false // no wildcard: an exact key
}
