"""GLSL for the embedded simulator: one scene pass with two render targets (HDR colour, uint
trainId), a sky pass that only fills pixels no geometry covered, and a camera post-process pass.

The label target is an unsigned-integer attachment (GL_R8UI): integer attachments cannot be
blended, filtered or multisampled, so each label pixel is exactly the trainId of the triangle that
won the depth test for that pixel, the same fragment that wrote the colour. Everything that makes
the RGB look like a camera (texture, weather, noise, blur) happens in colour only.
Material numbers match sim/meshes.py.
"""

COMMON = r"""
uint hash_u(uvec3 v) {
    v = v * 1664525u + 1013904223u;
    v.x += v.y * v.z; v.y += v.z * v.x; v.z += v.x * v.y;
    v ^= v >> 16u;
    v.x += v.y * v.z; v.y += v.z * v.x; v.z += v.x * v.y;
    return v.x ^ v.y ^ v.z;
}
// Arithmetic value noise: on llvmpipe a few integer ops are much cheaper than texture fetches.
float hash2(vec2 p) {
    uvec2 v = uvec2(ivec2(floor(p)) + 32768);
    uint h = (v.x * 0x8da6b343u) ^ (v.y * 0xd8163841u);
    h ^= h >> 15u; h *= 0x2c1b3c6du; h ^= h >> 12u;
    return float(h >> 8u) * (1.0 / 16777216.0);
}
float hash3(vec3 p) { return hash2(p.xy + floor(p.z) * vec2(113.0, 71.0)); }
float vnoise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    f = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash2(i), hash2(i + vec2(1, 0)), f.x), mix(hash2(i + vec2(0, 1)), hash2(i + vec2(1, 1)), f.x), f.y);
}
float fbm(vec2 p) { return 0.62 * vnoise(p) + 0.38 * vnoise(p * 2.7 + 7.1); }
float vnoise3(vec3 p) { return vnoise(p.xy + p.z * vec2(0.713, 1.371)); }
"""

SCENE_VS = r"""
#version 330
uniform mat4 u_viewproj;
in vec3 in_pos; in vec3 in_normal; in vec2 in_uv; in vec3 in_color; in float in_mat; in float in_label; in float in_param;
out vec3 v_pos; out vec3 v_normal; out vec2 v_uv;
flat out vec3 v_color; flat out int v_mat; flat out int v_label; flat out float v_param;
void main() {
    v_pos = in_pos; v_normal = in_normal; v_uv = in_uv; v_color = in_color;
    v_mat = int(in_mat + 0.5); v_label = int(in_label + 0.5); v_param = in_param;
    gl_Position = u_viewproj * vec4(in_pos, 1.0);
}
"""

SCENE_FS = r"""
#version 330
uniform vec3 u_cam_pos; uniform vec3 u_cam_fwd;
uniform vec3 u_sun_dir; uniform vec3 u_sun_col; uniform vec3 u_sky_zenith; uniform vec3 u_sky_horizon;
uniform vec3 u_amb_ground; uniform vec3 u_fog_col; uniform float u_fog; uniform float u_time;
uniform float u_wet; uniform float u_night; uniform float u_headlights;
uniform sampler2D u_shadow; uniform mat4 u_lightvp; uniform float u_shadow_on; uniform float u_shadow_size;
in vec3 v_pos; in vec3 v_normal; in vec2 v_uv;
flat in vec3 v_color; flat in int v_mat; flat in int v_label; flat in float v_param;
layout(location = 0) out vec4 o_color;
layout(location = 1) out uint o_label;
""" + COMMON + r"""
vec3 sky_color(vec3 d) {
    float h = clamp(d.z, 0.0, 1.0);
    return mix(u_sky_horizon, u_sky_zenith, pow(h, 0.55));
}
uniform vec4 u_tl_force[8];  // forced lights: (phase offset of the intersection, axis group, state, on)
int tl_state(float offset, float grp) {
    for (int i = 0; i < 8; ++i) {
        vec4 f = u_tl_force[i];
        if (f.w > 0.5 && abs(offset - f.x) < 1e-4)  // the forced axis shows f.z, the cross axis its opposite
            return abs(grp - f.y) < 0.5 ? int(f.z + 0.5) : (f.z < 0.5 ? 2 : 0);
    }
    float ph = mod(u_time + offset + grp * 12.0, 24.0);
    return ph < 9.0 ? 2 : (ph < 12.0 ? 1 : 0);   // 2 green, 1 yellow, 0 red
}
void main() {
    vec3 n = normalize(v_normal);
    vec3 V = u_cam_pos - v_pos; float dist = length(V); V /= dist;
    if (dot(n, V) < 0.0) n = -n;  // two-sided lighting
    vec3 albedo = v_color; float spec = 0.04; float rough = 0.8; vec3 emit = vec3(0.0);
    vec2 uv = v_uv; float p = v_param;
    float wetmask = 0.0;
    if (v_mat == 1) {            // asphalt: grain, patches, tyre polish
        float g = 0.6 * hash2(uv * 24.0) + 0.4 * vnoise(uv * 4.0);
        float patch = vnoise(uv * 0.15 + p * 13.0);
        albedo = v_color * (0.78 + 0.3 * g) * (0.78 + 0.45 * patch);
        spec = 0.05; rough = 0.7; wetmask = 1.0;
    } else if (v_mat == 2) {     // paint marking, worn
        float wear = fbm(uv * 2.5);
        albedo = mix(vec3(0.2), v_color, smoothstep(0.25, 0.45, wear)) * (0.9 + 0.1 * hash2(uv * 40.0));
        spec = 0.06; wetmask = 0.7;
    } else if (v_mat == 3) {     // paving slabs
        vec2 t = uv / vec2(0.6, 0.6); vec2 f = fract(t);
        float grout = step(0.94, max(f.x, f.y));
        float tone = 0.85 + 0.25 * hash2(floor(t));
        albedo = v_color * tone * (0.88 + 0.15 * hash2(uv * 25.0)) * (1.0 - 0.45 * grout) * (0.85 + 0.25 * vnoise(uv * 0.2));
        wetmask = 0.6;
    } else if (v_mat == 4) {     // facades with windows, ground-floor shops, curtain walls
        float style = fract(p * 7.31);
        float colw = 2.6 + 1.6 * fract(p * 13.7);
        float fh = 3.1 + 0.4 * fract(p * 5.3);
        float ww = 0.35 + 0.3 * fract(p * 3.1);      // window width fraction
        float wh = 0.45 + 0.25 * fract(p * 17.9);    // window height fraction
        vec2 cell = vec2(uv.x / colw, (uv.y - 0.3) / fh);
        vec2 f = fract(cell); vec2 id = floor(cell);
        float wall_n = vnoise(uv * 0.7 + p * 31.0);
        albedo = v_color * (0.82 + 0.3 * wall_n) * (0.9 + 0.12 * vnoise(vec2(uv.x * 3.0, uv.y * 0.2)));
        bool glassy = style > 0.86;
        float win;
        if (uv.y < fh + 0.3 && style < 0.6) {        // shopfront
            float sf = fract(uv.x / (colw * 1.5));
            win = step(0.08, sf) * step(sf, 0.92) * step(0.5, uv.y) * step(uv.y, fh - 0.2);
        } else if (glassy) {
            win = step(0.04, f.x) * step(f.x, 0.96) * step(0.12, f.y) * step(f.y, 0.96);
        } else {
            win = step(0.5 - ww / 2.0, f.x) * step(f.x, 0.5 + ww / 2.0) * step(0.5 - wh / 2.0, f.y) * step(f.y, 0.5 + wh / 2.0);
        }
        // sills and frames
        float sill = step(0.5 - ww / 2.0 - 0.05, f.x) * step(f.x, 0.5 + ww / 2.0 + 0.05) * step(0.5 - wh / 2.0 - 0.06, f.y) * step(f.y, 0.5 - wh / 2.0);
        albedo = mix(albedo, albedo * 1.25 + 0.05, sill * (1.0 - win));
        if (win > 0.5) {
            vec3 R = reflect(-V, n);
            float cur = hash2(id + p * 100.0);
            vec3 refl = sky_color(R) * 0.6 + 0.04;
            vec3 inside = vec3(0.06, 0.065, 0.07) * (0.6 + 0.8 * cur);
            float blind = step(0.7, cur) * step(0.55, f.y);
            inside = mix(inside, vec3(0.5, 0.48, 0.42) * 0.5, blind);
            float fres = 0.15 + 0.6 * pow(1.0 - max(dot(n, V), 0.0), 3.0);
            albedo = inside;
            emit += refl * fres * 0.9;
            if (glassy) { albedo = mix(albedo, vec3(0.1, 0.16, 0.2), 0.5); emit += refl * 0.25; }
            float lit = step(0.62, hash2(id * 1.7 + p * 51.0));
            emit += u_night * lit * vec3(1.0, 0.75, 0.45) * (0.25 + 0.35 * cur);
            spec = 0.5; rough = 0.1;
        }
    } else if (v_mat == 5) {     // vehicle glass
        vec3 R = reflect(-V, n);
        float fres = 0.2 + 0.7 * pow(1.0 - max(dot(n, V), 0.0), 3.0);
        albedo = v_color; emit += sky_color(R) * fres * 0.5; spec = 0.6; rough = 0.08;
    } else if (v_mat == 6) {     // foliage: leaf clumps with light and dark pockets
        float l = vnoise3(v_pos * 3.1 + p * 10.0);
        float l2 = hash3(v_pos * 9.0);
        albedo = v_color * (0.45 + 0.75 * l) * (0.8 + 0.4 * l2) * vec3(1.0 + 0.25 * (p - 0.5), 1.0, 1.0);
        n = normalize(n + 0.55 * (vec3(l, l2, 1.0 - l) - 0.5));
        rough = 0.9;
    } else if (v_mat == 7) {     // grass with dry patches
        float g = vnoise(uv * 7.0) * 0.5 + hash2(uv * 30.0) * 0.5;
        float dry = smoothstep(0.45, 0.75, vnoise(uv * 0.07 + p * 9.0));
        albedo = mix(v_color, vec3(0.42, 0.38, 0.2), dry * 0.7) * (0.7 + 0.5 * g);
        wetmask = 0.3;
    } else if (v_mat == 8 || v_mat == 19) {  // fabric / skin
        albedo = v_color * (0.88 + 0.2 * vnoise3(v_pos * 25.0));
        rough = 0.95;
    } else if (v_mat == 9) {     // traffic-light lamp
        int state = tl_state(v_color.y, v_color.z);
        int lamp = int(v_color.x + 0.5);        // 0 red (top), 1 yellow, 2 green
        vec3 hue = lamp == 0 ? vec3(1.0, 0.08, 0.03) : (lamp == 1 ? vec3(1.0, 0.6, 0.05) : vec3(0.1, 1.0, 0.45));
        float on = (lamp == 0 && state == 0) || (lamp == 1 && state == 1) || (lamp == 2 && state == 2) ? 1.0 : 0.0;
        float disc = 1.0 - smoothstep(0.75, 0.95, length(uv));
        albedo = mix(vec3(0.03), hue * 0.08, disc);
        emit += disc * on * hue * 7.0;
    } else if (v_mat == 10) {    // concrete: stains, streaks
        float s = vnoise(uv * vec2(0.6, 0.25) + p * 11.0);
        albedo = v_color * (0.75 + 0.4 * s) * (0.9 + 0.15 * hash2(uv * 15.0));
        albedo *= 1.0 - 0.18 * smoothstep(0.6, 0.0, uv.y) * step(0.01, uv.y);
        wetmask = 0.4;
    } else if (v_mat == 11) {    // fence: planks or bars
        float plank = fract(uv.x / (p > 0.5 ? 0.14 : 0.11));
        float gap = p > 0.5 ? step(0.85, plank) : step(0.3, plank);
        albedo = v_color * (0.8 + 0.3 * vnoise(vec2(uv.x * 40.0, uv.y * 2.0))) * (1.0 - 0.6 * gap);
    } else if (v_mat == 12 || v_mat == 17) {  // metal, rails
        albedo = v_color * (0.85 + 0.25 * vnoise3(v_pos * 6.0));
        spec = 0.35; rough = 0.35;
    } else if (v_mat == 13) {    // traffic-sign plate
        float r = length(uv) / 0.35;
        int kind = int(v_param + 0.5);
        vec3 red = vec3(0.75, 0.04, 0.04), white = vec3(0.92), blue = vec3(0.05, 0.22, 0.62);
        if (kind == 0 || kind == 5) albedo = r > 0.72 ? red : white;
        else if (kind == 1) albedo = (abs(uv.y) < 0.06 || abs(uv.x) < 0.06) && r < 0.7 ? white : red;
        else if (kind == 2) albedo = (abs(uv.x) < 0.05 && r < 0.65) ? white : blue;
        else if (kind == 3) albedo = abs(uv.y) < 0.07 && r < 0.75 ? white : red;
        else albedo = v_color;
        albedo *= 0.9 + 0.1 * vnoise(uv * 30.0);
        emit += albedo * u_headlights * 0.3;  // retro-reflective at night
        spec = 0.2; rough = 0.3;
    } else if (v_mat == 14) {    // rubber
        albedo = v_color; rough = 0.9;
    } else if (v_mat == 15) {    // head lamp / luminaire
        albedo = v_color * 0.6; emit += v_color * u_night * 4.0; spec = 0.5; rough = 0.1;
    } else if (v_mat == 16) {    // bark
        albedo = v_color * (0.7 + 0.5 * vnoise(vec2(uv.x * 8.0, uv.y * 1.5)));
    } else if (v_mat == 18) {    // dirt
        albedo = v_color * (0.7 + 0.5 * fbm(uv * 3.0));
    } else if (v_mat == 20) {    // tail light
        albedo = v_color; emit += v_color * u_night * 2.5; spec = 0.5; rough = 0.1;
    } else {                     // paint (vehicles, street objects): clear-coat reflections
        albedo = v_color * (0.92 + 0.08 * vnoise3(v_pos * 10.0));
        vec3 R = reflect(-V, n);
        float fres = 0.04 + 0.5 * pow(1.0 - max(dot(n, V), 0.0), 5.0);
        emit += sky_color(R) * fres * 0.35;
        spec = 0.3; rough = 0.25;
    }
    // wet surfaces: darker albedo, sky reflection
    albedo = albedo * albedo;  // authored colours are display-referred; shade in (approximately) linear light
    float wet = 0.0;
    if (u_wet > 0.0) wet = u_wet * wetmask * (0.6 + 0.4 * smoothstep(0.3, 0.6, vnoise(uv * 0.35)));
    albedo *= 1.0 - 0.45 * wet;
    // lighting: sun (Lambert + Blinn-Phong), hemispheric sky/ground ambient, contact darkening
    float ndl = max(dot(n, u_sun_dir), 0.0);
    // sun shadows from static geometry: orthographic shadow map, 2x2 bilinear PCF with unfiltered
    // fetches (filtered/compare sampling is slow on llvmpipe)
    if (u_shadow_on > 0.0 && ndl > 0.0) {
        vec4 lp = u_lightvp * vec4(v_pos + n * 0.12, 1.0);
        vec2 suv = lp.xy * 0.5 + 0.5;
        if (suv.x > 0.0 && suv.x < 1.0 && suv.y > 0.0 && suv.y < 1.0) {
            float fd = lp.z * 0.5 + 0.5 - 0.00025;
            vec2 t = suv * u_shadow_size - 0.5;
            ivec2 i0 = ivec2(floor(t));
            vec2 f = fract(t);
            ivec2 lim = ivec2(u_shadow_size) - 1;
            float s00 = step(fd, texelFetch(u_shadow, clamp(i0, ivec2(0), lim), 0).r);
            float s10 = step(fd, texelFetch(u_shadow, clamp(i0 + ivec2(1, 0), ivec2(0), lim), 0).r);
            float s01 = step(fd, texelFetch(u_shadow, clamp(i0 + ivec2(0, 1), ivec2(0), lim), 0).r);
            float s11 = step(fd, texelFetch(u_shadow, clamp(i0 + ivec2(1, 1), ivec2(0), lim), 0).r);
            ndl *= mix(mix(s00, s10, f.x), mix(s01, s11, f.x), f.y);
        }
    }
    vec3 ambient = mix(u_amb_ground, u_sky_zenith * 0.9 + u_sky_horizon * 0.3, n.z * 0.5 + 0.5);
    float ao = abs(n.z) < 0.5 ? 0.55 + 0.45 * smoothstep(0.0, 1.8, v_pos.z) : 1.0;
    vec3 H = normalize(u_sun_dir + V);
    float shin = mix(200.0, 8.0, rough);
    float sp = spec * pow(max(dot(n, H), 0.0), shin) * (shin + 8.0) / 25.0 * step(0.0, ndl);
    vec3 col = albedo * (u_sun_col * ndl + ambient * ao) + u_sun_col * sp;
    // ego headlights and street glow at night
    if (u_headlights > 0.0) {
        vec3 Ld = -V;
        float cone = smoothstep(0.82, 0.97, dot(Ld, u_cam_fwd));
        float att = 60.0 / (dist * dist + 20.0);
        col += albedo * vec3(1.0, 0.95, 0.85) * cone * att * u_headlights * max(dot(n, V), 0.0) * 3.0;
        col += albedo * vec3(1.0, 0.72, 0.4) * u_night * 0.1 * (0.5 + 0.5 * vnoise(v_pos.xy * 0.08));
    }
    if (wet > 0.0) {
        vec3 R = reflect(-V, n);
        float fres = 0.05 + 0.95 * pow(1.0 - max(dot(n, V), 0.0), 5.0);
        col += sky_color(R) * fres * wet * 0.8;
    }
    col += emit;
    // aerial perspective: exponential fog toward the horizon colour
    float fog = 1.0 - exp(-u_fog * dist);
    col = mix(col, u_fog_col, fog);
    o_color = vec4(col, 1.0);
    o_label = uint(v_label);
}
"""

SHADOW_VS = r"""
#version 330
uniform mat4 u_lightvp;
in vec3 in_pos;
void main() { gl_Position = u_lightvp * vec4(in_pos, 1.0); }
"""

SHADOW_FS = r"""
#version 330
void main() { }
"""

FULLSCREEN_VS = r"""
#version 330
in vec2 in_xy;
out vec2 v_ndc;
void main() { v_ndc = in_xy; gl_Position = vec4(in_xy, 1.0, 1.0); }
"""

SKY_FS = r"""
#version 330
uniform mat4 u_inv_viewproj;
uniform vec3 u_sun_dir; uniform vec3 u_sun_col; uniform vec3 u_sky_zenith; uniform vec3 u_sky_horizon;
uniform vec3 u_fog_col; uniform float u_fog; uniform float u_cloud; uniform float u_time; uniform float u_night;
uniform float u_seed; uniform uint u_sky_label;
in vec2 v_ndc;
layout(location = 0) out vec4 o_color;
layout(location = 1) out uint o_label;
""" + COMMON + r"""
void main() {
    vec4 a = u_inv_viewproj * vec4(v_ndc, -1.0, 1.0);
    vec4 b = u_inv_viewproj * vec4(v_ndc, 1.0, 1.0);
    vec3 d = normalize(b.xyz / b.w - a.xyz / a.w);
    float h = clamp(d.z, 0.0, 1.0);
    vec3 col = mix(u_sky_horizon, u_sky_zenith, pow(h, 0.55));
    float sd = max(dot(d, u_sun_dir), 0.0);
    col += u_sun_col * (pow(sd, 800.0) * 20.0 + pow(sd, 12.0) * 0.25) * (1.0 - 0.8 * u_cloud);
    // clouds: fbm on a plane 1 km up, drifting
    vec2 cp = d.xy / max(d.z, 0.03) * 1.2 + vec2(u_time * 0.01, u_seed * 0.37);
    float c = fbm(cp) * 0.65 + fbm(cp * 3.1 + 5.0) * 0.35;
    float cover = smoothstep(1.0 - u_cloud * 0.95 - 0.1, 1.05 - u_cloud * 0.6, c);
    vec3 ccol = mix(u_sky_horizon * 1.05 + 0.05, vec3(0.75), 0.5) * (0.7 + 0.5 * c) * (1.0 - 0.85 * u_night);
    ccol += u_sun_col * pow(sd, 6.0) * 0.3;
    col = mix(col, ccol, cover * smoothstep(0.0, 0.08, d.z));
    // stars at night
    float star = step(0.9985, hash3(floor(d * 400.0))) * u_night * (1.0 - cover);
    col += vec3(star * 0.8);
    col = mix(col, u_fog_col, clamp(u_fog * 12.0, 0.0, 1.0) * (1.0 - 0.6 * h));
    o_color = vec4(col, 1.0);
    o_label = u_sky_label;
}
"""

POST_FS = r"""
#version 330
uniform sampler2D u_hdr;
uniform vec2 u_size; uniform float u_exposure; uniform float u_sensor_noise; uniform float u_blur;
uniform float u_vignette; uniform float u_rain; uniform float u_time; uniform float u_seed; uniform int u_frame;
in vec2 v_ndc;
out vec4 o_color;
""" + COMMON + r"""
vec3 aces(vec3 x) { return clamp((x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14), 0.0, 1.0); }
void main() {
    vec2 px = gl_FragCoord.xy;
    vec2 uv = px / u_size;
    ivec2 ip = ivec2(px);
    ivec2 mx = ivec2(u_size) - 1;
    vec3 c = texelFetch(u_hdr, ip, 0).rgb;
    if (u_blur > 0.0) {   // lens softness: a small cross-shaped kernel (unfiltered fetches are cheap on llvmpipe)
        vec3 s = texelFetch(u_hdr, ivec2(min(ip.x + 1, mx.x), ip.y), 0).rgb + texelFetch(u_hdr, ivec2(max(ip.x - 1, 0), ip.y), 0).rgb
               + texelFetch(u_hdr, ivec2(ip.x, min(ip.y + 1, mx.y)), 0).rgb + texelFetch(u_hdr, ivec2(ip.x, max(ip.y - 1, 0)), 0).rgb;
        c = mix(c, s * 0.25, u_blur * 0.5);
    }
    if (u_rain > 0.0) {   // slanted rain streaks in front of the camera
        vec2 q = vec2(px.x + px.y * 0.18, px.y + u_time * 900.0);
        float colid = floor(q.x / 3.0);
        float len = 18.0 + 30.0 * hash2(vec2(colid, 3.0));
        float seg = floor((q.y + hash2(vec2(colid, 9.0)) * 500.0) / len);
        float drop = step(1.0 - 0.025 * u_rain, hash3(vec3(colid, seg, u_seed)));
        float across = 1.0 - abs(fract(q.x / 3.0) - 0.5) * 2.0;
        c = mix(c, c * 0.6 + vec3(0.25, 0.26, 0.28), drop * across * 0.3);
    }
    c *= u_exposure;
    float r = length((uv - 0.5) * vec2(1.0, u_size.y / u_size.x) * 1.4);
    c *= 1.0 - u_vignette * r * r;
    c = aces(c);
    c = pow(c, vec3(1.0 / 2.2));
    if (u_sensor_noise > 0.0) {  // shot + read noise, different every frame, fixed per seed
        uvec3 k = uvec3(uvec2(px), uint(u_frame) * 7919u + uint(u_seed));
        uint h1 = hash_u(k), h2 = hash_u(k + uvec3(0u, 0u, 104729u));
        // sum of three 10-bit uniforms: an approximately Gaussian luminance noise
        float g = (float(h1 & 1023u) + float((h1 >> 10u) & 1023u) + float((h1 >> 20u) & 1023u)) / 1024.0;
        g = (g - 1.5) * 2.0;
        vec3 chroma = vec3(float(h2 & 1023u), float((h2 >> 10u) & 1023u), float((h2 >> 20u) & 1023u)) / 1024.0;
        float n1 = chroma.z, n2 = chroma.x, n3 = chroma.y;
        float lum = dot(c, vec3(0.3, 0.59, 0.11));
        c += g * u_sensor_noise * (0.5 + sqrt(max(lum, 0.0)));
        c += (vec3(n2, n3, n1) - 0.5) * u_sensor_noise * 0.6;
    }
    o_color = vec4(clamp(c, 0.0, 1.0), 1.0);
}
"""


# -- material specialisation ------------------------------------------------------------------
# llvmpipe executes every branch of a fragment shader under a mask, so one shader with twenty
# material branches costs the sum of all of them on every fragment. The renderer therefore draws
# geometry grouped by material family, each with a shader that holds only that family's code.
MATERIAL_GROUPS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3, 17),            # asphalt, markings, paving, rails
    (4,),                     # facades
    (6, 7, 16, 18),           # foliage, grass, bark, dirt
    (8, 19, 14, 11, 10, 12),  # fabric, skin, rubber, fence wood, concrete, metal
    (0, 5, 15, 20),           # paint, glass, head and tail lights
    (9, 13),                  # traffic-light lamps, sign plates
)


def _split_scene_fs() -> tuple[str, list[tuple[tuple[int, ...], str]], str, str]:
    import re

    start = SCENE_FS.index("    if (v_mat == 1) {")
    end = SCENE_FS.index("    // wet surfaces")
    head, chain, tail = SCENE_FS[:start], SCENE_FS[start:end], SCENE_FS[end:]
    parts = re.split(r"^    (?:\} else )?if \((.*?)\) \{[^\n]*\n|^    \} else \{[^\n]*\n", chain, flags=re.M)
    # parts: ['', cond1, body1, cond2, body2, ..., None, default_body]
    branches = []
    default = ""
    i = 1
    while i < len(parts):
        cond, body = parts[i], parts[i + 1]
        if cond is None:
            default = body.rsplit("    }", 1)[0]
        else:
            mats = tuple(int(m) for m in re.findall(r"v_mat == (\d+)", cond))
            branches.append((mats, body))
        i += 2
    return head, branches, default, tail


def scene_fs_for(group: tuple[int, ...]) -> str:
    """Scene fragment shader holding only the material branches of `group` (0 = default paint)."""
    head, branches, default, tail = _split_scene_fs()
    chosen = [(m, b) for m, b in branches if set(m) & set(group)]
    code = []
    for k, (mats, body) in enumerate(chosen):
        cond = " || ".join(f"v_mat == {m}" for m in mats)
        code.append(("    if" if k == 0 else "    } else if") + f" ({cond}) {{\n" + body)
    if 0 in group:  # the paint branch is the chain's final `else`
        code.append(("    {\n" if not chosen else "    } else {\n") + default)
    code.append("    }\n")
    return head + "".join(code) + tail
