#include "textflag.h"

// func loadFence()
TEXT ·loadFence(SB), NOSPLIT, $0-0
	DMB	$0x9 // DMB ISHLD: earlier loads complete before later loads and stores
	RET
